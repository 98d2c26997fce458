/* test_chassis: the sandbox seen from inside (this binary re-runs itself in it as a probe:
 * every denied system call fails with EPERM, and with a marker errno when the filter is
 * built with one, which proves the filter and not a missing capability refused it; the
 * rlimits, uid, capabilities and mounts are what they should be), the timeout killing a
 * whole tree, and the worker's pieces: output cap and redaction, S2-USAGE lines, secrets
 * files, contracts, results, reasons and the proxy's request parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "chassis.h"
#include "netproxy.h"
#include "util/yamljson.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MARKER_ERRNO 3999

static char self_exe[4096];
/* a checkout under a directory the sandbox hides (/tmp, a home): show this program's
 * directory to the probes it runs inside, as `s2 worker --expose` would */
static struct strvec expose_self = STRVEC_INIT;
static char tmpdir[64];    /* the chassis' workdir (hidden inside) */
static char hostdir[4200]; /* host files the sandbox may see (not under /tmp, which it replaces) */

/* ==== the probes (run inside the sandbox) ==== */

struct probe {
    const char *name;
    long (*call)(void);
};

static long p_mount(void)
{
    return syscall(SYS_mount, "none", "/nonexistent", "tmpfs", 0, NULL);
}
static long p_umount2(void)
{
    return syscall(SYS_umount2, "/nonexistent", 0);
}
static long p_ptrace(void)
{
    return syscall(SYS_ptrace, 16 /* ATTACH */, 999999, 0, 0);
}
static long p_kexec_load(void)
{
    return syscall(SYS_kexec_load, 0, 0, NULL, 0);
}
static long p_kexec_file_load(void)
{
    return syscall(SYS_kexec_file_load, -1, -1, 0, "", 0);
}
static long p_bpf(void)
{
    return syscall(SYS_bpf, -1, NULL, 0);
}
static long p_init_module(void)
{
    return syscall(SYS_init_module, NULL, 0, "");
}
static long p_finit_module(void)
{
    return syscall(SYS_finit_module, -1, "", 0);
}
static long p_delete_module(void)
{
    return syscall(SYS_delete_module, "s2_nonexistent", 0);
}
static long p_keyctl(void)
{
    return syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3, 0);
}
static long p_add_key(void)
{
    return syscall(SYS_add_key, "user", "s2", "x", 1, -3);
}
static long p_request_key(void)
{
    return syscall(SYS_request_key, "user", "s2", NULL, -3);
}
static long p_perf(void)
{
    return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
}
static long p_reboot(void)
{
    return syscall(SYS_reboot, 0, 0, 0, NULL);
}
static long p_swapon(void)
{
    return syscall(SYS_swapon, "/nonexistent", 0);
}
static long p_swapoff(void)
{
    return syscall(SYS_swapoff, "/nonexistent");
}
static long p_pivot_root(void)
{
    return syscall(SYS_pivot_root, "/nonexistent", "/nonexistent");
}
static long p_setns(void)
{
    return syscall(SYS_setns, -1, 0);
}
static long p_unshare(void)
{
    return syscall(SYS_unshare, CLONE_NEWUSER);
}
static long p_open_by_handle_at(void)
{
    return syscall(SYS_open_by_handle_at, -1, NULL, 0);
}
static long p_userfaultfd(void)
{
    return syscall(SYS_userfaultfd, 0);
}
static long p_fsopen(void)
{
    return syscall(SYS_fsopen, "tmpfs", 0);
}
static long p_open_tree(void)
{
    return syscall(SYS_open_tree, -1, "/", 0);
}
static long p_process_vm_readv(void)
{
    return syscall(SYS_process_vm_readv, 1, NULL, 0, NULL, 0, 0);
}
static long p_io_uring_setup(void)
{
    return syscall(SYS_io_uring_setup, 1, NULL);
}
static long p_clone_newnet(void)
{
    long r = syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0);
    if (r == 0)
        _exit(0);
    if (r > 0)
        waitpid((pid_t)r, NULL, 0);
    return r;
}

static const struct probe denied[] = {
    {"mount", p_mount},
    {"umount2", p_umount2},
    {"ptrace", p_ptrace},
    {"kexec_load", p_kexec_load},
    {"kexec_file_load", p_kexec_file_load},
    {"bpf", p_bpf},
    {"init_module", p_init_module},
    {"finit_module", p_finit_module},
    {"delete_module", p_delete_module},
    {"keyctl", p_keyctl},
    {"add_key", p_add_key},
    {"request_key", p_request_key},
    {"perf_event_open", p_perf},
    {"reboot", p_reboot},
    {"swapon", p_swapon},
    {"swapoff", p_swapoff},
    {"pivot_root", p_pivot_root},
    {"setns", p_setns},
    {"unshare", p_unshare},
    {"open_by_handle_at", p_open_by_handle_at},
    {"userfaultfd", p_userfaultfd},
    {"fsopen", p_fsopen},
    {"open_tree", p_open_tree},
    {"process_vm_readv", p_process_vm_readv},
    {"io_uring_setup", p_io_uring_setup},
    {"clone(CLONE_NEWNET)", p_clone_newnet},
};
#define NDENIED (sizeof denied / sizeof denied[0])

static int probe_syscalls(void)
{
    for (size_t i = 0; i < NDENIED; i++) {
        errno = 0;
        long r = denied[i].call();
        printf("%s %ld %d\n", denied[i].name, r, r < 0 ? errno : 0);
    }
    /* what stays allowed */
    long c3 = syscall(SYS_clone3, NULL, 0);
    printf("clone3 %ld %d\n", c3, c3 < 0 ? errno : 0);
    pid_t p = fork();
    if (p == 0)
        _exit(7);
    int st = 0;
    waitpid(p, &st, 0);
    printf("fork %d %d\n", p > 0 ? 0 : -1, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    printf("getpid %ld 0\n", (long)getpid());
    return 0;
}

static void print_status_field(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, strlen(field)))
            fputs(line, stdout);
    if (f)
        fclose(f);
}

static int probe_env(void)
{
    static const struct {
        const char *name;
        int res;
    } rl[] = {{"nproc", RLIMIT_NPROC}, {"nofile", RLIMIT_NOFILE}, {"fsize", RLIMIT_FSIZE},
              {"data", RLIMIT_DATA},   {"cpu", RLIMIT_CPU},       {"core", RLIMIT_CORE}};
    for (size_t i = 0; i < sizeof rl / sizeof rl[0]; i++) {
        struct rlimit r;
        getrlimit(rl[i].res, &r);
        printf("rlimit %s %lld\n", rl[i].name,
               r.rlim_cur == RLIM_INFINITY ? -1LL : (long long)r.rlim_cur);
    }
    printf("uid %d %d\n", (int)getuid(), (int)geteuid());
    printf("pid %d\n", (int)getpid());
    char cwd[256];
    printf("cwd %s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
    print_status_field("CapEff");
    print_status_field("CapBnd");
    print_status_field("NoNewPrivs");
    print_status_field("Seccomp:");
    int fd = open("/etc/s2-probe", O_WRONLY | O_CREAT, 0644);
    printf("write-etc %d\n", fd < 0 ? errno : 0);
    fd = open("/s2/ws/probe-file", O_WRONLY | O_CREAT, 0644);
    printf("write-ws %d\n", fd < 0 ? errno : 0);
    if (fd >= 0)
        close(fd);
    fd = open("/tmp/probe-file", O_WRONLY | O_CREAT, 0644);
    printf("write-tmp %d\n", fd < 0 ? errno : 0);
    if (fd >= 0)
        close(fd);
    const char *hidden = getenv("PROBE_HIDDEN");
    if (hidden) {
        struct stat st;
        printf("hidden-visible %d\n", stat(hidden, &st) == 0);
    }
    const char *visible = getenv("PROBE_VISIBLE");
    if (visible) {
        struct stat st;
        printf("visible %d\n", stat(visible, &st) == 0);
        int wfd = open(visible, O_WRONLY);
        printf("write-visible %d\n", wfd < 0 ? errno : 0);
    }
    const char *secret = getenv("PROBE_SECRET_FILE");
    if (secret) {
        char b[64] = {0};
        int sfd = open(secret, O_RDONLY);
        ssize_t n = sfd >= 0 ? read(sfd, b, sizeof b - 1) : -1;
        printf("secret-bytes %zd\n", n);
        if (sfd >= 0)
            close(sfd);
    }
    printf("S2_ENV %s\n", getenv("S2_PROBE") ? getenv("S2_PROBE") : "(unset)");
    printf("LEAKED %s\n", getenv("PROBE_PARENT_ONLY") ? "yes" : "no");
    return 0;
}

/* ==== helpers ==== */

static struct chassis *new_chassis(enum chassis_mode mode, int seccomp_errno, struct strvec *hide)
{
    struct chassis *ch = NULL;
    struct s2_error err = S2_ERROR_INIT;
    struct chassis_config cfg = {
        .mode = mode,
        .workdir = tmpdir,
        .seccomp_errno = seccomp_errno,
        .hide = hide,
        .expose = &expose_self};
    if (chassis_new(&ch, &cfg, &err)) {
        print_message("# chassis_new: %s\n", err.msg);
        s2_error_release(&err);
        return NULL;
    }
    return ch;
}

static char *make_task_dir(const char *name)
{
    char *dir = NULL;
    if (asprintf(&dir, "%s/%s", tmpdir, name) < 0)
        abort();
    char ws[4200];
    snprintf(ws, sizeof ws, "%s/ws", dir);
    mkdir(dir, 0755);
    mkdir(ws, 0755);
    if (geteuid() == 0) {
        assert_int_equal(chown(dir, CHASSIS_ROOT_MAP_ID, CHASSIS_ROOT_MAP_ID), 0);
        assert_int_equal(chown(ws, CHASSIS_ROOT_MAP_ID, CHASSIS_ROOT_MAP_ID), 0);
    }
    return dir;
}

static void rm_task_dir(char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(dir);
}

static int strict_available(void)
{
    static int known = -1;
    if (known < 0) {
        struct chassis *ch = new_chassis(CHASSIS_STRICT, 0, NULL);
        known = ch != NULL;
        chassis_free(ch);
    }
    return known;
}

#define NEED_STRICT()                                                                              \
    do {                                                                                           \
        if (!strict_available()) {                                                                 \
            print_message("# the strict sandbox is not available here (see s2 worker --check)\n"); \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static char *envp_default[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "ASAN_OPTIONS=detect_leaks=0",
                               "S2_PROBE=given", NULL};

/* Run argv in a sandbox; returns the result (caller releases). */
static void run(struct chassis *ch, char **argv, char **envp, const char *dir,
                const struct chassis_limits *lim, int64_t timeout_ms, struct chassis_result *r)
{
    struct s2_error err = S2_ERROR_INIT;
    struct chassis_spec spec = {.argv = argv,
                                .envp = envp ? envp : envp_default,
                                .task_dir = dir,
                                .timeout_ms = timeout_ms,
                                .kill_grace_ms = 500,
                                .stdout_max = 1 << 20,
                                .stderr_keep = 8192,
                                .stop_fd = -1,
                                .force_fd = -1};
    if (lim)
        spec.limits = *lim;
    chassis_result_init(r);
    int rc = chassis_run(ch, &spec, r, &err);
    if (rc)
        print_message("# chassis_run: %s\n", err.msg);
    assert_int_equal(rc, 0);
    if (r->end == CHASSIS_SETUP)
        print_message("# setup: %s\n", r->setup_error);
    s2_error_release(&err);
}

/* The value after "key " on its line of out, or NULL. */
static const char *field(const char *out, const char *key, char *val, size_t vlen)
{
    size_t kl = strlen(key);
    for (const char *l = out; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t ll = nl ? (size_t)(nl - l) : strlen(l);
        if (ll > kl && !strncmp(l, key, kl) && (l[kl] == ' ' || l[kl] == ':' || l[kl] == '\t')) {
            const char *v = l + kl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t n = (size_t)(l + ll - v);
            if (n >= vlen)
                n = vlen - 1;
            memcpy(val, v, n);
            val[n] = 0;
            return val;
        }
        l = nl ? nl + 1 : NULL;
    }
    return NULL;
}

/* ==== sandbox tests ==== */

static void check_denials(int deny_errno)
{
    struct chassis *ch = new_chassis(CHASSIS_STRICT, deny_errno, NULL);
    assert_non_null(ch);
    char *dir = make_task_dir("seccomp");
    char *argv[] = {self_exe, "--probe", "syscalls", NULL};
    struct chassis_result r;
    run(ch, argv, NULL, dir, NULL, 20000, &r);
    assert_int_equal(r.end, CHASSIS_EXITED);
    assert_int_equal(r.exit_code, 0);
    for (size_t i = 0; i < NDENIED; i++) {
        char key[64], v[64];
        snprintf(key, sizeof key, "%s", denied[i].name);
        const char *got = field(r.out.ptr, key, v, sizeof v);
        if (!got)
            fail_msg("no probe line for %s in:\n%s", denied[i].name, r.out.ptr);
        char want[32];
        snprintf(want, sizeof want, "-1 %d", deny_errno);
        if (strcmp(got, want))
            fail_msg("%s: got '%s', want '%s' (errno %d)", denied[i].name, got, want, deny_errno);
    }
    char v[64];
    assert_string_equal(field(r.out.ptr, "clone3", v, sizeof v), "-1 38"); /* ENOSYS */
    assert_string_equal(field(r.out.ptr, "fork", v, sizeof v), "0 7");     /* still allowed */
    chassis_result_release(&r);
    rm_task_dir(dir);
    chassis_free(ch);
}

static void test_seccomp_eperm(void **state)
{
    (void)state;
    NEED_STRICT();
    check_denials(EPERM);
}

static void test_seccomp_marker(void **state)
{
    (void)state;
    NEED_STRICT();
    /* the same rules with an errno no kernel path returns: the filter itself refused */
    check_denials(MARKER_ERRNO);
}

static void test_inside_view(void **state)
{
    (void)state;
    NEED_STRICT();
    char secret_path[4300];
    snprintf(secret_path, sizeof secret_path, "%s/secrets.env", hostdir);
    int fd = open(secret_path, O_WRONLY | O_CREAT | O_TRUNC, 0644); /* readable on purpose */
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "K=topsecret\n", 12), 12);
    close(fd);
    char hidden[4300];
    snprintf(hidden, sizeof hidden, "%s/hidden-dir", hostdir);
    mkdir(hidden, 0755);
    struct strvec hide = STRVEC_INIT;
    strvec_push(&hide, secret_path);
    strvec_push(&hide, hidden);
    struct chassis *ch = new_chassis(CHASSIS_STRICT, 0, &hide);
    assert_non_null(ch);
    struct s2_error verr = S2_ERROR_INIT;
    /* the host directory is made in the current one: under /tmp (a fresh one inside) or a
     * hidden directory, it is out of sight */
    if (!strncmp(hostdir, "/tmp/", 5) || chassis_command_visible(ch, hostdir, &verr)) {
        print_message("# skip: the host directory %s is not visible in a sandbox (run from a "
                      "checkout outside /tmp and homes)\n",
                      hostdir);
        s2_error_release(&verr);
        strvec_release(&hide);
        chassis_free(ch);
        skip();
    }
    char *dir = make_task_dir("view");
    char e1[4400], e2[4400], e3[4400];
    snprintf(e1, sizeof e1, "PROBE_HIDDEN=%s/x", hidden);
    snprintf(e2, sizeof e2, "PROBE_SECRET_FILE=%s", secret_path);
    char hx[4400];
    snprintf(hx, sizeof hx, "%s/x", hidden);
    fd = open(hx, O_WRONLY | O_CREAT, 0644);
    close(fd);
    setenv("PROBE_PARENT_ONLY", "1", 1);
    snprintf(e3, sizeof e3, "PROBE_VISIBLE=%s/visible", hostdir);
    fd = open(e3 + 14, O_WRONLY | O_CREAT, 0666);
    close(fd);
    chmod(e3 + 14, 0666); /* only the read-only mount stands in the way */
    char *envp[] = {
        "PATH=/usr/bin:/bin", "ASAN_OPTIONS=detect_leaks=0", "S2_PROBE=given", e1, e2, e3, NULL};
    char *argv[] = {self_exe, "--probe", "env", NULL};
    struct chassis_limits lim = {
        .pids = 50, .open_files = 77, .file_size_bytes = 5 << 20, .cpu_seconds = 33};
    struct chassis_result r;
    run(ch, argv, envp, dir, &lim, 20000, &r);
    assert_int_equal(r.end, CHASSIS_EXITED);
    const char *o = r.out.ptr;
    char v[128];
    if (!strcmp(chassis_mechanism(ch, "pids"), "RLIMIT_NPROC"))
        assert_string_equal(field(o, "rlimit nproc", v, sizeof v), "50");
    assert_string_equal(field(o, "rlimit nofile", v, sizeof v), "77");
    assert_string_equal(field(o, "rlimit fsize", v, sizeof v), "5242880");
    if (!strcmp(chassis_mechanism(ch, "cpu"), "RLIMIT_CPU"))
        assert_string_equal(field(o, "rlimit cpu", v, sizeof v), "33");
    assert_string_equal(field(o, "rlimit core", v, sizeof v), "0");
    assert_string_equal(field(o, "uid", v, sizeof v), "1000 1000");
    assert_string_equal(field(o, "pid", v, sizeof v), "2"); /* PID 1 is the sandbox's init */
    assert_string_equal(field(o, "cwd", v, sizeof v), "/s2/ws");
    assert_string_equal(field(o, "CapEff", v, sizeof v), "0000000000000000");
    assert_string_equal(field(o, "CapBnd", v, sizeof v), "0000000000000000");
    assert_string_equal(field(o, "NoNewPrivs", v, sizeof v), "1");
    assert_string_equal(field(o, "Seccomp", v, sizeof v), "2");
    assert_string_equal(field(o, "write-etc", v, sizeof v), "30"); /* EROFS */
    assert_string_equal(field(o, "write-ws", v, sizeof v), "0");
    assert_string_equal(field(o, "write-tmp", v, sizeof v), "0");
    assert_string_equal(field(o, "hidden-visible", v, sizeof v), "0");
    assert_string_equal(field(o, "visible", v, sizeof v), "1");
    assert_string_equal(field(o, "write-visible", v, sizeof v), "30"); /* EROFS */
    assert_string_equal(field(o, "secret-bytes", v, sizeof v), "0");   /* /dev/null over it */
    assert_string_equal(field(o, "S2_ENV", v, sizeof v), "given");
    assert_string_equal(field(o, "LEAKED", v, sizeof v), "no");
    /* the workspace write landed in the task directory; /tmp did not reach the host */
    char p[4200];
    snprintf(p, sizeof p, "%s/ws/probe-file", dir);
    assert_int_equal(access(p, F_OK), 0);
    assert_int_not_equal(access("/etc/s2-probe", F_OK), 0);
    chassis_result_release(&r);
    rm_task_dir(dir);
    chassis_free(ch);
    strvec_release(&hide);
    unlink(hx);
    rmdir(hidden);
    unlink(secret_path);
    unlink(e3 + 14);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void check_tree_kill(enum chassis_mode mode)
{
    struct chassis *ch = new_chassis(mode, 0, NULL);
    assert_non_null(ch);
    char *dir = make_task_dir(mode == CHASSIS_STRICT ? "tree" : "tree-none");
    char alive[4200];
    snprintf(alive, sizeof alive, "%s/ws/alive", dir);
    /* a grandchild that ignores SIGTERM and keeps stdout open, growing a file */
    char *argv[] = {"sh", "-c",
                    "(trap '' TERM; while :; do echo x >> alive; sleep 0.1; done) & "
                    "echo started; sleep 1000",
                    NULL};
    struct chassis_result r;
    int64_t t0 = now_ms();
    run(ch, argv, NULL, dir, NULL, 1500, &r);
    int64_t took = now_ms() - t0;
    assert_int_equal(r.end, CHASSIS_TIMEOUT);
    assert_true(r.started);
    assert_non_null(strstr(r.out.ptr, "started"));
    /* timeout 1.5 s + grace 0.5 s, and it did not wait for the drain deadline */
    if (took > 3500)
        fail_msg("the run took %lld ms", (long long)took);
    struct stat a, b;
    assert_int_equal(stat(alive, &a), 0);
    assert_true(a.st_size > 0);
    usleep(500000);
    assert_int_equal(stat(alive, &b), 0);
    assert_int_equal(a.st_size, b.st_size); /* nobody writes it any more: the grandchild is dead */
    char *d = chassis_describe_end(&r, &(struct chassis_spec){.timeout_ms = 1500});
    assert_non_null(strstr(d, "timed out after 1.5 s"));
    free(d);
    chassis_result_release(&r);
    rm_task_dir(dir);
    chassis_free(ch);
}

static void test_timeout_kills_tree(void **state)
{
    (void)state;
    NEED_STRICT();
    check_tree_kill(CHASSIS_STRICT);
}

static void test_timeout_kills_group_none(void **state)
{
    (void)state;
    check_tree_kill(CHASSIS_NONE);
}

static void test_exit_and_signal(void **state)
{
    (void)state;
    NEED_STRICT();
    struct chassis *ch = new_chassis(CHASSIS_STRICT, 0, NULL);
    char *dir = make_task_dir("exit");
    struct chassis_result r;
    char *a1[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
    run(ch, a1, NULL, dir, NULL, 10000, &r);
    assert_int_equal(r.end, CHASSIS_EXITED);
    assert_int_equal(r.exit_code, 3);
    assert_string_equal(r.out.ptr, "out\n");
    assert_string_equal(r.err.ptr, "err\n");
    chassis_result_release(&r);
    char *a2[] = {"sh", "-c", "kill -KILL $$", NULL};
    run(ch, a2, NULL, dir, NULL, 10000, &r);
    assert_int_equal(r.end, CHASSIS_SIGNALED);
    assert_int_equal(r.term_signal, SIGKILL);
    chassis_result_release(&r);
    char *a3[] = {"/nonexistent/cmd", NULL};
    struct s2_error err = S2_ERROR_INIT;
    struct chassis_spec spec = {
        .argv = a3, .envp = envp_default, .task_dir = dir, .stop_fd = -1, .force_fd = -1};
    chassis_result_init(&r);
    assert_int_not_equal(chassis_run(ch, &spec, &r, &err), 0);
    assert_non_null(strstr(err.msg, "/nonexistent/cmd"));
    s2_error_release(&err);
    chassis_result_release(&r);
    /* a pids limit holds a fork bomb: the count of processes never passes it */
    char *a4[] = {"sh", "-c",
                  "bomb() { bomb | bomb & }; bomb; sleep 2; set -- /proc/[0-9]*; n=$#; "
                  "kill -9 -1 2>/dev/null; echo $n",
                  NULL};
    struct chassis_limits lim = {.pids = 20};
    run(ch, a4, NULL, dir, &lim, 20000, &r);
    assert_int_equal(r.end, CHASSIS_EXITED);
    /* at the end the bomb may have died out (each shell whose fork failed exits), so the
     * count alone does not show it ran: the refused forks on stderr do */
    int n = atoi(r.out.ptr);
    if (n < 1 || n > 20)
        fail_msg("%d processes under a limit of 20", n);
    if (!r.err.ptr || !strstr(r.err.ptr, "fork"))
        fail_msg("no refused fork reported: %s", r.err.ptr ? r.err.ptr : "(no stderr)");
    chassis_result_release(&r);
    /* stdout past the cap is counted, not kept */
    char *a5[] = {"sh", "-c", "head -c 100000 /dev/zero", NULL};
    struct chassis_spec s5 = {.argv = a5,
                              .envp = envp_default,
                              .task_dir = dir,
                              .stop_fd = -1,
                              .force_fd = -1,
                              .stdout_max = 1000,
                              .stderr_keep = 10};
    chassis_result_init(&r);
    assert_int_equal(chassis_run(ch, &s5, &r, &err), 0);
    assert_int_equal(r.out.len, 1000);
    assert_int_equal(r.out_total, 100000);
    chassis_result_release(&r);
    rm_task_dir(dir);
    chassis_free(ch);
}

static void test_plan(void **state)
{
    (void)state;
    NEED_STRICT();
    struct chassis *ch = new_chassis(CHASSIS_STRICT, 0, NULL);
    struct chassis_spec spec = {.task_dir = "/tmp/x", .stop_fd = -1, .force_fd = -1};
    char *t = chassis_plan_text(ch, &spec);
    assert_non_null(strstr(t, "mount proc on /proc"));
    assert_non_null(strstr(t, "bind /usr -> /usr (ro)"));
    assert_non_null(strstr(t, "bind /tmp/x -> /s2\n"));
    assert_null(strstr(t, "bind /home")); /* hidden */
    assert_null(strstr(t, "bind /root"));
    assert_non_null(strstr(t, "remount read-only /\n"));
    free(t);
    chassis_free(ch);
}

/* ==== the worker's pieces ==== */

static void test_redaction(void **state)
{
    (void)state;
    struct redactor r = REDACTOR_INIT;
    worker_redactor_add(&r, "A", "sk-abc");
    worker_redactor_add(&r, "B", "sk-abcdef"); /* contains A's value: replaced whole */
    worker_redactor_add(&r, "Q", "p\"w");      /* and its JSON-escaped form p\"w */
    char *s = worker_redact_str(&r, "x sk-abcdef y sk-abc z {\"k\":\"p\\\"w\"} p\"w");
    assert_string_equal(s, "x [REDACTED:B] y [REDACTED:A] z {\"k\":\"[REDACTED:Q]\"} [REDACTED:Q]");
    free(s);
    /* the cap never cuts a secret in half: it is kept whole, then replaced */
    const char *raw = "0123456789sk-abcdef-tail";
    struct buf out = BUF_INIT;
    buf_init(&out, 0);
    int trunc = 0;
    worker_capture(&r, raw, strlen(raw), 1000, 13, &trunc, &out);
    assert_string_equal(out.ptr, "0123456789[REDACTED:B]");
    assert_true(trunc);
    buf_reset(&out);
    worker_capture(&r, "short", 5, 5, 13, &trunc, &out);
    assert_string_equal(out.ptr, "short");
    assert_false(trunc);
    buf_release(&out);
    worker_redactor_release(&r);
}

static void test_result_and_reason(void **state)
{
    (void)state;
    json_t *j = worker_result("{\"a\": 1}\n", 9, 0, 9);
    assert_true(json_is_object(j));
    assert_int_equal(json_integer_value(json_object_get(j, "a")), 1);
    json_decref(j);
    j = worker_result("hello\n", 6, 0, 6);
    assert_string_equal(json_string_value(j), "hello");
    json_decref(j);
    j = worker_result("bad \xff byte", 10, 0, 10);
    assert_string_equal(json_string_value(j), "bad \xef\xbf\xbd byte");
    json_decref(j);
    j = worker_result("abc", 3, 1, 5000);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    assert_int_equal(json_integer_value(json_object_get(j, "bytes")), 5000);
    assert_string_equal(json_string_value(json_object_get(j, "output")), "abc");
    json_decref(j);
    /* escaping can double the size: the result still fits the server's limit */
    size_t n = 256 * 1024;
    char *big = malloc(n);
    memset(big, '"', n);
    j = worker_result(big, n, 0, n);
    char *t = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_true(strlen(t) <= 256 * 1024);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    free(t);
    json_decref(j);
    free(big);

    const char *tail = "line1\nS2-USAGE: {\"tokens_in\":1}\nbad\001char\nlast\n";
    char *r = worker_reason("exit status 3", tail, strlen(tail));
    assert_string_equal(r, "exit status 3\n--- last lines of stderr ---\nline1\nbad?char\nlast");
    free(r);
    r = worker_reason("timed out", "", 0);
    assert_string_equal(r, "timed out");
    free(r);
    char *longtail = malloc(100000);
    for (int i = 0; i < 100000; i++)
        longtail[i] = i % 50 == 49 ? '\n' : 'x';
    r = worker_reason("exit status 1", longtail, 100000);
    assert_true(strlen(r) <= 4096);
    assert_int_equal(strncmp(r, "exit status 1\n", 14), 0);
    free(r);
    free(longtail);
}

static void test_usage_lines(void **state)
{
    (void)state;
    struct worker_usage u = {0};
    struct s2_error err = S2_ERROR_INIT;
    const char *l1 = "S2-USAGE: {\"model\":\"sonnet\",\"tokens_in\":100,\"tokens_out\":20}";
    const char *l2 = "  S2-USAGE: {\"model\":\"sonnet\",\"tokens_in\":5,\"usd\":0.25}";
    const char *l3 = "S2-USAGE: {\"tokens_out\":7}";
    assert_int_equal(worker_usage_line(&u, l1, strlen(l1), &err), 1);
    assert_int_equal(worker_usage_line(&u, l2, strlen(l2), &err), 1);
    assert_int_equal(worker_usage_line(&u, l3, strlen(l3), &err), 1);
    assert_int_equal(worker_usage_line(&u, "hello", 5, &err), 0);
    const char *bad[] = {"S2-USAGE: {\"tokens_in\":-1}",
                         "S2-USAGE: not json",
                         "S2-USAGE: {\"tokens\":1}",
                         "S2-USAGE: {\"usd\":-2}",
                         "S2-USAGE: {\"model\":\"bad model\"}",
                         "S2-USAGE: [1]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_true(worker_usage_line(&u, bad[i], strlen(bad[i]), &err) < 0);
        assert_non_null(err.msg);
        s2_error_release(&err);
    }
    assert_int_equal(u.lines, 3 + 6);
    assert_int_equal(u.bad, 6);
    json_t *a = worker_usage_take(&u), *b = worker_usage_take(&u);
    assert_null(worker_usage_take(&u));
    json_t *son = json_object_get(a, "model") ? a : b, *none = son == a ? b : a;
    assert_string_equal(json_string_value(json_object_get(son, "model")), "sonnet");
    assert_int_equal(json_integer_value(json_object_get(son, "tokens_in")), 105);
    assert_int_equal(json_integer_value(json_object_get(son, "tokens_out")), 20);
    assert_true(json_real_value(json_object_get(son, "usd")) == 0.25);
    assert_null(json_object_get(none, "model"));
    assert_int_equal(json_integer_value(json_object_get(none, "tokens_out")), 7);
    assert_null(json_object_get(none, "usd"));
    /* a failed report gives it back */
    worker_usage_put_back(&u, son);
    json_t *c = worker_usage_take(&u);
    assert_int_equal(json_integer_value(json_object_get(c, "tokens_in")), 105);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    worker_usage_release(&u);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_secrets_file(void **state)
{
    (void)state;
    char p[128];
    snprintf(p, sizeof p, "%s/sec", tmpdir);
    struct secrets s = {0};
    struct s2_error err = S2_ERROR_INIT;
    write_file(p, "# comment\n\nA_KEY=alpha\nexport B = \"be ta\"\nC='x=y'\r\n", 0644);
    assert_int_not_equal(worker_secrets_load(&s, p, &err), 0);
    assert_non_null(strstr(err.msg, "chmod 600"));
    s2_error_release(&err);
    chmod(p, 0600);
    assert_int_equal(worker_secrets_load(&s, p, &err), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(worker_secret_get(&s, "A_KEY"), "alpha");
    assert_string_equal(worker_secret_get(&s, "B"), "be ta");
    assert_string_equal(worker_secret_get(&s, "C"), "x=y");
    assert_null(worker_secret_get(&s, "D"));
    worker_secrets_release(&s);
    const char *bad[] = {"A=1\nA=2\n", "S2_TOKEN=x\n", "1A=x\n", "novalue\n"};
    for (size_t i = 0; i < 4; i++) {
        write_file(p, bad[i], 0600);
        assert_int_not_equal(worker_secrets_load(&s, p, &err), 0);
        assert_non_null(err.msg);
        s2_error_release(&err);
        assert_int_equal(s.n, 0);
    }
    unlink(p);
}

static void test_contracts(void **state)
{
    (void)state;
    char p[128];
    snprintf(p, sizeof p, "%s/contracts.yaml", tmpdir);
    write_file(p,
               "swarm: sw1\nversion: 1.0.0\nlimits: {max_memory_mb: 256, max_pids: 64,\n"
               "  max_execution_time_seconds: 300}\nnetwork: [api.example.com:443, "
               "'*.example.org:443']\nsecrets: [SIP_API_KEY]\nslos: {p99_latency_ms: 500}\n"
               "---\nswarm: sw2\nsecrets: [OTHER]\n",
               0644);
    struct s2_error err = S2_ERROR_INIT;
    json_t *m = worker_contracts_load(p, &err);
    if (!m)
        fail_msg("%s", err.msg);
    struct worker_contract c, d, e;
    assert_int_equal(worker_contract_parse(json_object_get(m, "sw1"), &c, &err), 0);
    assert_int_equal(c.memory_mb, 256);
    assert_int_equal(c.pids, 64);
    assert_int_equal(c.timeout_s, 300);
    assert_int_equal(c.cpu_percent, -1);
    assert_int_equal(c.network.n, 2);
    assert_string_equal(c.secrets.v[0], "SIP_API_KEY");
    json_t *srv = json_pack("{s:[s,s],s:[s],s:{s:i}}", "secrets", "SIP_API_KEY", "OTHER", "network",
                            "api.example.com:443", "limits", "max_memory_mb", 128);
    assert_int_equal(worker_contract_parse(srv, &d, &err), 0);
    worker_contract_merge(&e, &d, &c);
    assert_int_equal(e.secrets.n, 1); /* what both grant */
    assert_string_equal(e.secrets.v[0], "SIP_API_KEY");
    assert_int_equal(e.network.n, 1);
    assert_int_equal(e.memory_mb, 128); /* the smaller limit */
    assert_int_equal(e.pids, 64);
    worker_contract_release(&e);
    struct worker_contract none;
    worker_contract_init(&none);
    worker_contract_merge(&e, &none, &c);
    assert_int_equal(e.secrets.n, 1);
    assert_int_equal(e.memory_mb, 256);
    worker_contract_release(&e);
    worker_contract_release(&c);
    worker_contract_release(&d);
    json_decref(srv);
    json_decref(m);
    const char *bad[] = {
        "swarm: sw1\nnetwork: [nope]\n",          "swarm: sw1\nsecrets: [S2_TOKEN]\n",
        "swarm: sw1\nlimits: {max_pids: many}\n", "swarm: [x]\n",
        "swarm: sw1\n---\nswarm: sw1\n",          "swarm: sw1\n  bad: indent\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(p, bad[i], 0644);
        json_t *x = worker_contracts_load(p, &err);
        if (x)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(err.msg);
        s2_error_release(&err);
    }
    unlink(p);
}

static void test_yaml(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT;
    const char *y = "a: 1\nb: 2.5\nc: 'text'\nd: [x, true, null, ~, \"7\"]\ne: {f: -3}\n";
    json_t *d = yaml_load_documents(y, strlen(y), "t.yaml", &err);
    assert_non_null(d);
    char *s = json_dumps(json_array_get(d, 0), JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"a\":1,\"b\":2.5,\"c\":\"text\",\"d\":[\"x\",true,null,null,\"7\"],"
                           "\"e\":{\"f\":-3}}");
    free(s);
    json_decref(d);
    const char *bad = "a: &x 1\nb: *x\n";
    assert_null(yaml_load_documents(bad, strlen(bad), "t.yaml", &err));
    assert_non_null(strstr(err.msg, "t.yaml:2:"));
    s2_error_release(&err);
}

static void test_proxy_parsing(void **state)
{
    (void)state;
    struct s2_error err = S2_ERROR_INIT;
    struct netproxy_request rq;
    const char *c =
        "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\nEARLY";
    assert_int_equal(netproxy_parse_request(c, strlen(c), &rq, &err), 0);
    assert_true(rq.connect);
    assert_string_equal(rq.host, "api.example.com");
    assert_int_equal(rq.port, 443);
    assert_int_equal(rq.head_len, strlen(c) - 5);
    const char *g = "GET http://Example.COM:8080/a/b?q=1 HTTP/1.1\r\nHost: example.com\r\n"
                    "Proxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n";
    assert_int_equal(netproxy_parse_request(g, strlen(g), &rq, &err), 0);
    assert_false(rq.connect);
    assert_string_equal(rq.host, "example.com");
    assert_int_equal(rq.port, 8080);
    assert_string_equal(rq.forward, "GET /a/b?q=1 HTTP/1.1\r\nHost: example.com\r\n"
                                    "Accept: */*\r\nConnection: close\r\n\r\n");
    free(rq.forward);
    const char *v6 = "CONNECT [::1]:7411 HTTP/1.1\r\n\r\n";
    assert_int_equal(netproxy_parse_request(v6, strlen(v6), &rq, &err), 0);
    assert_string_equal(rq.host, "::1");
    const char *bad[] = {"GET /relative HTTP/1.1\r\n\r\n",      "CONNECT host HTTP/1.1\r\n\r\n",
                         "CONNECT host:99999 HTTP/1.1\r\n\r\n", "GET https://x/ HTTP/1.1\r\n\r\n",
                         "GET http://u:p@x/ HTTP/1.1\r\n\r\n",  "CONNECT a:1 HTTP/1.1\r\n",
                         "CONNECT *.a.com:443 HTTP/1.1\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (!netproxy_parse_request(bad[i], strlen(bad[i]), &rq, &err))
            fail_msg("accepted: %s", bad[i]);
        free(rq.forward);
        s2_error_release(&err);
    }
    struct netproxy *np = netproxy_new("t");
    assert_int_equal(netproxy_allow(np, "api.example.com:443", &err), 0);
    assert_int_equal(netproxy_allow(np, "*.example.org:443", &err), 0);
    assert_int_equal(netproxy_allow(np, "127.0.0.1:7411", &err), 0);
    assert_int_not_equal(netproxy_allow(np, "a.*.com:1", &err), 0);
    s2_error_release(&err);
    assert_true(netproxy_allowed(np, "api.example.com", 443));
    assert_false(netproxy_allowed(np, "api.example.com", 80));
    assert_false(netproxy_allowed(np, "evil.com", 443));
    assert_true(netproxy_allowed(np, "a.example.org", 443));
    assert_false(netproxy_allowed(np, "example.org", 443));
    assert_false(netproxy_allowed(np, "badexample.org", 443));
    assert_true(netproxy_allowed(np, "127.0.0.1", 7411));
    netproxy_free(np);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--probe"))
        return !strcmp(argv[2], "syscalls") ? probe_syscalls() : probe_env();
    if (!realpath("/proc/self/exe", self_exe))
        return 1;
    char *slash = strrchr(self_exe, '/');
    if (slash && slash != self_exe) {
        *slash = 0;
        strvec_push(&expose_self, self_exe);
        *slash = '/';
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_chassis-XXXXXX");
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        return 1;
    snprintf(hostdir, sizeof hostdir, "%s/.test_chassis-host-XXXXXX", cwd);
    if (!mkdtemp(tmpdir) || chmod(tmpdir, 0711) || !mkdtemp(hostdir) || chmod(hostdir, 0755))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seccomp_eperm),
        cmocka_unit_test(test_seccomp_marker),
        cmocka_unit_test(test_inside_view),
        cmocka_unit_test(test_timeout_kills_tree),
        cmocka_unit_test(test_timeout_kills_group_none),
        cmocka_unit_test(test_exit_and_signal),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_redaction),
        cmocka_unit_test(test_result_and_reason),
        cmocka_unit_test(test_usage_lines),
        cmocka_unit_test(test_secrets_file),
        cmocka_unit_test(test_contracts),
        cmocka_unit_test(test_yaml),
        cmocka_unit_test(test_proxy_parsing),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", tmpdir, hostdir);
    if (system(cmd))
        rc = 1;
    strvec_release(&expose_self);
    return rc;
}
