/* cli.c: helpers shared by the command implementations (cli_*.c). */
#include "cli.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int cli_common(struct cli *c, int opt, int *exit_now)
{
    switch (opt) {
    case 0x100:
        c->server = optarg;
        return 1;
    case 0x101:
        c->json = 1;
        return 1;
    case 'h':
        cli_help(c->cmd);
        *exit_now = 1;
        return 1;
    }
    return 0;
}

int cli_bad_option(const struct cli *c, int opt, char **argv)
{
    const char *what = argv[optind - 1];
    if (opt == ':')
        return cli_usage(c, "option '%s' needs a value", what);
    if (optopt && optopt != '?' && optopt < 0x100)
        return cli_usage(c, "unknown option '-%c'", optopt);
    return cli_usage(c, "unknown option '%s'", what);
}

void cli_help(const struct cli_cmd *cmd)
{
    printf("usage: %s\n\n%s", cmd->synopsis, cmd->help);
}

int cli_usage(const struct cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: %s\nTry 's2 %s --help'.\n", c->cmd->synopsis, c->cmd->name);
    return EXIT_USAGE;
}

int cli_fail(const struct s2_error *err)
{
    fprintf(stderr, "error: %s\n", err->msg ? err->msg : "failed");
    return err->kind == S2_EINVAL && err->code && !strcmp(err->code, "usage") ? EXIT_USAGE
                                                                              : EXIT_FAIL;
}

int cli_failf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_FAIL;
}

int cli_call(struct cli *c, const char *method, const char *path, json_t *body, json_t **out,
             long *status)
{
    struct s2_error err = S2_ERROR_INIT;
    if (!c->connected) {
        if (client_init(&c->client, c->server, NULL, &err)) {
            int rc = cli_fail(&err);
            s2_error_release(&err);
            return rc;
        }
        c->connected = 1;
    }
    if (out)
        *out = NULL;
    if (client_call(&c->client, method, path, body, status, out, &err)) {
        int rc = cli_fail(&err);
        if (err.kind == S2_EUNAUTH && !getenv("S2_TOKEN"))
            fprintf(stderr, "hint: set S2_TOKEN to the admin token `s2 init` printed, or to a "
                            "swarm token\n");
        s2_error_release(&err);
        return rc;
    }
    return EXIT_OK;
}

void cli_done(struct cli *c)
{
    if (c->connected)
        client_release(&c->client);
    c->connected = 0;
}

void cli_print_json(json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_REAL_PRECISION(15) | JSON_ENCODE_ANY);
    if (s) {
        puts(s);
        free(s);
    }
}

int cli_int(const struct cli *c, const char *opt, const char *arg, long long lo, long long hi,
            long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (errno || end == arg || *end || v < lo || v > hi)
        return cli_usage(c, "%s must be a whole number from %lld to %lld (got '%s')", opt, lo, hi,
                         arg);
    *out = v;
    return 0;
}

int cli_num(const struct cli *c, const char *opt, const char *arg, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || !isfinite(v))
        return cli_usage(c, "%s must be a number (got '%s')", opt, arg);
    *out = v;
    return 0;
}

json_t *cli_list(const char *arg)
{
    json_t *a = json_array();
    const char *p = arg;
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && *p == ' ')
            p++, n--;
        while (n && p[n - 1] == ' ')
            n--;
        if (n)
            json_array_append_new(a, json_stringn(p, n));
        p = e ? e + 1 : NULL;
    }
    return a;
}

char *cli_read_file(const char *path, size_t max, struct s2_error *err)
{
    char *text = fs_read_file(path, max, 0, NULL);
    if (!text) {
        if (errno == EFBIG)
            s2_fail(err, S2_EIO, "io", "'%s' is larger than %zu bytes", path, max);
        else
            s2_fail(err, S2_EIO, "io", "cannot read '%s': %s", path, strerror(errno));
    }
    return text;
}

int cli_progress_wanted(const struct cli *c)
{
    return !c->json && isatty(STDERR_FILENO);
}

void cli_progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputc('\r', stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\033[K", stderr); /* what a longer line before left */
    va_end(ap);
}

void cli_progress_clear(void)
{
    fputs("\r\033[K", stderr);
}

void cli_fmt_time(long long ms, char *out, size_t outlen)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&s, &tm);
    strftime(out, outlen, "%Y-%m-%d %H:%M:%S", &tm);
}

void cli_fmt_in(long long delta_ms, char *out, size_t outlen)
{
    long long a = delta_ms < 0 ? -delta_ms : delta_ms;
    long long s = a / 1000;
    char d[32];
    if (s < 60)
        snprintf(d, sizeof d, "%llds", s);
    else if (s < 3600)
        snprintf(d, sizeof d, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(d, sizeof d, "%lldh%02lldm", s / 3600, s / 60 % 60);
    else
        snprintf(d, sizeof d, "%lldd%02lldh", s / 86400, s / 3600 % 24);
    snprintf(out, outlen, delta_ms >= 0 ? "in %s" : "%s ago", d);
}

const char *cli_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* ---- remembered leases ---- */

static char *lease_dir(void)
{
    const char *home = getenv("S2_HOME");
    if (home && *home)
        return xasprintf("%s/leases", home);
    const char *state = getenv("XDG_STATE_HOME");
    if (state && *state)
        return xasprintf("%s/s2/leases", state);
    home = getenv("HOME");
    return xasprintf("%s/.local/state/s2/leases", home && *home ? home : "/tmp");
}

static char *lease_path(const char *server, const char *task)
{
    if (!server || !*server)
        server = getenv("S2_SERVER");
    if (!server || !*server)
        server = S2_DEFAULT_SERVER;
    struct buf b = BUF_INIT;
    char *dir = lease_dir();
    buf_addf(&b, "%s/", dir);
    free(dir);
    for (const char *p = server; *p; p++)
        buf_addch(&b, (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                              (*p >= '0' && *p <= '9')
                          ? *p
                          : '_');
    buf_adds(&b, "__");
    for (const char *p = task; *p; p++)
        buf_addch(&b, *p == '/' ? '_' : *p);
    return buf_detach(&b, NULL);
}

static int mkdirs(const char *path)
{
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0700);
            *s = '/';
        }
    }
    int rc = mkdir(p, 0700);
    free(p);
    return rc && errno != EEXIST ? -1 : 0;
}

int cli_lease_save(const char *server, const char *task, const char *lease)
{
    char *dir = lease_dir();
    int rc = mkdirs(dir);
    free(dir);
    if (rc)
        return -1;
    char *path = lease_path(server, task);
    char *tmp = xasprintf("%s.tmp%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    rc = -1;
    if (fd >= 0) {
        size_t n = strlen(lease);
        if (write(fd, lease, n) == (ssize_t)n && close(fd) == 0 && rename(tmp, path) == 0)
            rc = 0;
        else
            unlink(tmp);
    }
    free(tmp);
    free(path);
    return rc;
}

char *cli_lease_load(const char *server, const char *task)
{
    char *path = lease_path(server, task);
    struct s2_error err = S2_ERROR_INIT;
    FILE *f = fopen(path, "rb");
    char *s = NULL;
    if (f) {
        fclose(f);
        s = cli_read_file(path, 4096, &err);
        s2_error_release(&err);
    }
    free(path);
    if (s) {
        size_t n = strlen(s);
        while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
            s[--n] = 0;
    }
    return s;
}

void cli_lease_forget(const char *server, const char *task)
{
    char *path = lease_path(server, task);
    unlink(path);
    free(path);
}
