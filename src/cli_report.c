/* cli_report.c: `s2 report`: reads the witness log through the API a page at a time and
 * prints what report.c measured, as text, JSON, Markdown or an SVG chart. */
#include "cli.h"
#include "report.h"
#include "util/clock.h"
#include "util/xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGE 1000

/* --since: ISO 8601 (date, or date and time, UTC unless an offset is given), milliseconds
 * since the epoch, or a duration ago (90s, 30m, 2h, 7d). 0 ok, -1 not understood. */
int cli_parse_since(const char *s, int64_t now_ms, int64_t *out)
{
    size_t n = strlen(s);
    if (!n || n > 64)
        return -1;
    char *end;
    errno = 0;
    if (isdigit((unsigned char)s[n - 1]) && strspn(s, "0123456789") == n) {
        long long v = strtoll(s, &end, 10);
        if (errno || v < 0)
            return -1;
        *out = v;
        return 0;
    }
    if (strchr("smhd", s[n - 1]) && n > 1 && strspn(s, "0123456789.") == n - 1) {
        double v = strtod(s, &end);
        if (end != s + n - 1 || !(v >= 0) || v > 1e7)
            return -1;
        double unit = s[n - 1] == 's' ? 1e3 : s[n - 1] == 'm' ? 6e4 : s[n - 1] == 'h' ? 3.6e6 : 8.64e7;
        *out = now_ms - (int64_t)(v * unit);
        return 0;
    }
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, used = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3 || used != 10)
        return -1;
    const char *p = s + 10;
    if (*p == 'T' || *p == ' ') {
        int k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &k) != 2 || k != 5)
            return -1;
        p += 1 + k;
        if (*p == ':') {
            if (sscanf(p + 1, "%2d%n", &sec, &k) != 1 || k != 2)
                return -1;
            p += 1 + k;
            if (*p == '.') {
                p++;
                int digits = 0;
                while (isdigit((unsigned char)*p)) {
                    if (digits < 3)
                        ms = ms * 10 + (*p - '0');
                    digits++;
                    p++;
                }
                if (!digits)
                    return -1;
                while (digits++ < 3)
                    ms *= 10;
            }
        }
    }
    int64_t off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5)
            return -1;
        off = (int64_t)(oh * 60 + om) * 60000 * (*p == '+' ? 1 : -1);
        p += 1 + k;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = (int64_t)t * 1000 + ms - off;
    return 0;
}

/* The first entry (after the filter) with time >= since, by bisection over seq. */
static int first_seq(struct cli *c, const char *filter, int64_t since, uint64_t *out)
{
    json_t *o = NULL;
    char *path = xasprintf("/v1/witness?order=desc&limit=1%s", filter);
    int rc = cli_call(c, "GET", path, NULL, &o, NULL);
    free(path);
    if (rc)
        return rc;
    json_t *last = json_array_get(json_object_get(o, "entries"), 0);
    uint64_t lo = 1, hi = last ? (uint64_t)json_integer_value(json_object_get(last, "seq")) + 1 : 1;
    json_decref(o);
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        path = xasprintf("/v1/witness?from=%llu&limit=1%s", (unsigned long long)mid, filter);
        rc = cli_call(c, "GET", path, NULL, &o, NULL);
        free(path);
        if (rc)
            return rc;
        json_t *e = json_array_get(json_object_get(o, "entries"), 0);
        if (!e || json_integer_value(json_object_get(e, "time")) >= since)
            hi = mid;
        else
            lo = (uint64_t)json_integer_value(json_object_get(e, "seq")) + 1;
        json_decref(o);
    }
    *out = lo;
    return EXIT_OK;
}

static void print_text(json_t *rep)
{
    json_t *all = json_array();
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(rep, "swarms"), i, s) json_array_append(all, s);
    json_array_append(all, json_object_get(rep, "overall"));
    printf("%-20s %6s %5s %5s %5s %4s %12s %12s %8s %12s %12s %7s %4s %10s\n", "SWARM", "LEASES",
           "DONE", "FAIL", "EXPD", "DEAD", "SEQUENTIAL", "MAKESPAN", "SPEEDUP", "COST $",
           "TOP-TIER $", "SAVING", "BLK", "BLOCKED");
    json_array_foreach(all, i, s) {
        json_t *t = json_object_get(s, "tasks"), *v = json_object_get(s, "velocity"),
               *c = json_object_get(s, "cost"), *b = json_object_get(s, "blockers");
        const char *name = json_string_value(json_object_get(s, "swarm"));
        char sp[16] = "-", sv[16] = "-";
        if (json_is_number(json_object_get(v, "speedup")))
            snprintf(sp, sizeof sp, "%.2fx", json_number_value(json_object_get(v, "speedup")));
        if (json_is_number(json_object_get(c, "saving_pct")))
            snprintf(sv, sizeof sv, "%.1f%%", json_number_value(json_object_get(c, "saving_pct")));
        printf("%-20s %6lld %5lld %5lld %5lld %4lld %11.3fs %11.3fs %8s %12.6f %12.6f %7s %4lld "
               "%9.3fs\n",
               name ? name : "(overall)",
               (long long)json_integer_value(json_object_get(t, "leases")),
               (long long)json_integer_value(json_object_get(t, "done")),
               (long long)json_integer_value(json_object_get(t, "failed")),
               (long long)json_integer_value(json_object_get(t, "expired")),
               (long long)json_integer_value(json_object_get(t, "dead")),
               json_integer_value(json_object_get(v, "sequential_ms")) / 1000.0,
               json_integer_value(json_object_get(v, "makespan_ms")) / 1000.0, sp,
               json_number_value(json_object_get(c, "usd")),
               json_number_value(json_object_get(c, "top_tier_usd")), sv,
               (long long)json_integer_value(json_object_get(b, "count")),
               (json_integer_value(json_object_get(b, "blocked_ms")) +
                json_integer_value(json_object_get(b, "open_ms"))) /
                   1000.0);
    }
    json_t *ov = json_object_get(rep, "overall");
    json_t *tiers = json_object_get(json_object_get(ov, "cost"), "tiers");
    if (json_array_size(tiers)) {
        printf("\nby tier (overall):\n");
        json_t *tc;
        json_array_foreach(tiers, i, tc) {
            char *models = json_dumps(json_object_get(tc, "models"), JSON_COMPACT | JSON_REAL_PRECISION(15));
            printf("  tier %lld %-24s %12lld in %12lld out  $%.6f (top tier $%.6f)\n",
                   (long long)json_integer_value(json_object_get(tc, "tier")), models,
                   (long long)json_integer_value(json_object_get(tc, "tokens_in")),
                   (long long)json_integer_value(json_object_get(tc, "tokens_out")),
                   json_number_value(json_object_get(tc, "usd")),
                   json_number_value(json_object_get(tc, "top_tier_usd")));
            free(models);
        }
    }
    json_t *b = json_object_get(ov, "blockers");
    if (json_integer_value(json_object_get(b, "count"))) {
        json_t *fh = json_object_get(b, "mean_time_to_first_helper_ms"),
               *hc = json_object_get(b, "mean_help_to_clear_ms");
        printf("\nblockers: %lld (%lld resolved, %lld open, %lld helped)",
               (long long)json_integer_value(json_object_get(b, "count")),
               (long long)json_integer_value(json_object_get(b, "resolved")),
               (long long)json_integer_value(json_object_get(b, "open")),
               (long long)json_integer_value(json_object_get(b, "helped")));
        if (json_is_number(fh) && json_is_number(hc))
            printf("; first helper after %.3fs, helpers cleared them in %.3fs (means)",
                   json_number_value(fh) / 1000, json_number_value(hc) / 1000);
        printf("\n");
    }
    json_decref(all);
}

int cli_report(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli c = {.cmd = cmd};
    const char *since_arg = NULL, *swarm = NULL, *svg = NULL;
    int md = 0, rc;
    int64_t since = 0;
    struct report *r = NULL;
    json_t *page = NULL, *rep = NULL, *models = NULL;
    char *filter = NULL;
    static const struct option opts[] = {{"since", required_argument, 0, 's'},
                                         {"swarm", required_argument, 0, 'w'},
                                         {"md", no_argument, 0, 'm'},
                                         {"svg", required_argument, 0, 'g'},
                                         CLI_COMMON_OPTS,
                                         {0}};
    CLI_OPTIONS(c, argc, argv, opts, case 's' : since_arg = optarg; break;
                case 'w' : swarm = optarg; break; case 'm' : md = 1; break;
                case 'g' : svg = optarg; break;);
    if (optind < argc) {
        rc = cli_usage(&c, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (md && c.json) {
        rc = cli_usage(&c, "--md and --json are exclusive");
        goto out;
    }
    if (since_arg && cli_parse_since(since_arg, clock_wall_ms(), &since)) {
        rc = cli_usage(&c, "--since '%s' is not a time: use 2026-11-24T17:00:00Z, 2026-11-24, "
                           "milliseconds since the epoch, or a duration ago (30m, 2h, 7d)",
                       since_arg);
        goto out;
    }
    if (swarm) {
        char *e = client_escape(swarm);
        filter = xasprintf("&swarm=%s", e);
        free(e);
    } else {
        filter = xstrdup("");
    }
    r = report_new(since, swarm);
    /* prices as they are now; the log's model.put entries replay any change in between */
    if ((rc = cli_call(&c, "GET", "/v1/models", NULL, &models, NULL)))
        goto out;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(models, "models"), i, m) {
        const char *name = json_string_value(json_object_get(m, "name"));
        if (name)
            report_model(r, name, (int)json_integer_value(json_object_get(m, "tier")),
                         (int64_t)(json_number_value(json_object_get(m, "usd_per_mtok_in")) * 1e6 + 0.5),
                         (int64_t)(json_number_value(json_object_get(m, "usd_per_mtok_out")) * 1e6 + 0.5));
    }
    uint64_t from = 1;
    if (since && (rc = first_seq(&c, filter, since, &from)))
        goto out;
    for (;;) {
        char *path = xasprintf("/v1/witness?from=%llu&limit=%d%s", (unsigned long long)from, PAGE,
                               filter);
        rc = cli_call(&c, "GET", path, NULL, &page, NULL);
        free(path);
        if (rc)
            goto out;
        json_t *e;
        json_array_foreach(json_object_get(page, "entries"), i, e) report_add(r, e);
        json_t *next = json_object_get(page, "next");
        if (!json_is_integer(next) || (uint64_t)json_integer_value(next) <= from)
            break;
        from = (uint64_t)json_integer_value(next);
        json_decref(page);
        page = NULL;
    }
    rep = report_json(r);
    if (svg) {
        char *text = report_svg(rep);
        if (!strcmp(svg, "-")) {
            fputs(text, stdout);
        } else {
            char *tmp = xasprintf("%s.tmp%d", svg, (int)getpid());
            FILE *f = fopen(tmp, "w");
            int bad = !f || fputs(text, f) < 0;
            if (f && fclose(f))
                bad = 1;
            if (bad || rename(tmp, svg)) {
                remove(tmp);
                rc = cli_failf("cannot write '%s': %s", svg, strerror(errno));
                free(tmp);
                free(text);
                goto out;
            }
            free(tmp);
        }
        free(text);
        if (!strcmp(svg, "-"))
            goto done;
    }
    if (c.json) {
        cli_print_json(rep);
    } else if (md) {
        char *text = report_markdown(rep);
        fputs(text, stdout);
        free(text);
    } else {
        print_text(rep);
    }
done:
    rc = EXIT_OK;
out:
    free(filter);
    json_decref(models);
    json_decref(page);
    json_decref(rep);
    report_free(r);
    cli_done(&c);
    return rc;
}
