/* test_events: the ring of recent events and its subscribers: SSE framing, resuming after
 * a Last-Event-ID, the gap frame for a reader that fell behind the ring, swarm filters,
 * partial reads, the arm/wake hand-shake, close, and a publisher racing a reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "util/buf.h"
#include "util/xalloc.h"

/* Publish events first..last (seq), swarm "a" for even seqs, "b" for odd, none for every
 * fifth; data {"n":SEQ}. */
static void publish_range(struct events *ev, uint64_t first, uint64_t last)
{
    size_t n = (size_t)(last - first + 1);
    struct event *v = xcalloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        uint64_t seq = first + i;
        v[i].seq = seq;
        v[i].swarm = seq % 5 == 0 ? NULL : xstrdup(seq % 2 ? "b" : "a");
        v[i].data = xasprintf("{\"n\":%llu}", (unsigned long long)seq);
        v[i].len = strlen(v[i].data);
    }
    events_publish(ev, v, n);
    free(v);
}

struct wakes {
    int armed, woken;
};

static void on_arm(void *arg)
{
    ((struct wakes *)arg)->armed++;
}

static void on_wake(void *arg)
{
    ((struct wakes *)arg)->woken++;
}

/* Everything readable now, NUL-terminated (caller frees); *rc the last events_read result. */
static char *drain(struct events *ev, struct event_sub *s, size_t chunk, struct wakes *w,
                   ssize_t *rc)
{
    size_t cap = 1 << 16, len = 0;
    char *out = xmalloc(cap);
    char *tmp = xmalloc(chunk);
    for (;;) {
        ssize_t n = events_read(ev, s, tmp, chunk, on_arm, w);
        *rc = n;
        if (n <= 0)
            break;
        if (len + (size_t)n + 1 > cap)
            out = xgrow(out, 1, len + (size_t)n + 1, &cap);
        memcpy(out + len, tmp, (size_t)n);
        len += (size_t)n;
    }
    out[len] = 0;
    free(tmp);
    return out;
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void test_frames_and_resume(void **state)
{
    (void)state;
    struct events *ev = events_new(16);
    struct wakes w = {0};
    publish_range(ev, 1, 3);
    assert_int_equal(events_last_seq(ev), 3);

    /* after=1: the events after the client's Last-Event-ID */
    struct event_sub *s = events_subscribe(ev, 1, NULL, on_wake, &w);
    ssize_t rc;
    char *got = drain(ev, s, 4096, &w, &rc);
    assert_string_equal(got, "id: 2\ndata: {\"n\":2}\n\nid: 3\ndata: {\"n\":3}\n\n");
    free(got);
    assert_int_equal(rc, 0);
    assert_int_equal(w.armed, 1); /* nothing left: armed */

    /* the armed subscriber is woken once by the next publish */
    publish_range(ev, 4, 4);
    assert_int_equal(w.woken, 1);
    publish_range(ev, 5, 5);
    assert_int_equal(w.woken, 1); /* not re-armed yet */
    got = drain(ev, s, 4096, &w, &rc);
    assert_string_equal(got, "id: 4\ndata: {\"n\":4}\n\nid: 5\ndata: {\"n\":5}\n\n");
    free(got);
    assert_int_equal(w.armed, 2);
    events_kick(ev);
    assert_int_equal(w.woken, 2);
    events_unsubscribe(ev, s);

    /* after=0: everything still in the ring; EVENTS_LIVE: only what comes next */
    struct wakes w0 = {0}, wl = {0};
    struct event_sub *s0 = events_subscribe(ev, 0, NULL, on_wake, &w0);
    struct event_sub *sl = events_subscribe(ev, EVENTS_LIVE, NULL, on_wake, &wl);
    got = drain(ev, s0, 4096, &w0, &rc);
    assert_non_null(strstr(got, "id: 1\n"));
    assert_non_null(strstr(got, "id: 5\n"));
    free(got);
    got = drain(ev, sl, 4096, &wl, &rc);
    assert_string_equal(got, "");
    free(got);
    publish_range(ev, 6, 6);
    got = drain(ev, sl, 4096, &wl, &rc);
    assert_string_equal(got, "id: 6\ndata: {\"n\":6}\n\n");
    free(got);

    /* an id from the future (another server's stream) reads as "from now on" */
    struct event_sub *sf = events_subscribe(ev, 1000, NULL, on_wake, &wl);
    got = drain(ev, sf, 4096, &wl, &rc);
    assert_string_equal(got, "");
    free(got);
    publish_range(ev, 7, 7);
    got = drain(ev, sf, 4096, &wl, &rc);
    assert_string_equal(got, "id: 7\ndata: {\"n\":7}\n\n");
    free(got);
    events_unsubscribe(ev, sf);
    events_unsubscribe(ev, s0);
    events_unsubscribe(ev, sl);
    events_free(ev);
}

static void test_gap_when_behind(void **state)
{
    (void)state;
    struct events *ev = events_new(4);
    struct wakes w = {0};
    struct event_sub *s = events_subscribe(ev, 0, NULL, on_wake, &w);
    publish_range(ev, 1, 10); /* the ring keeps 7..10 */
    ssize_t rc;
    char *got = drain(ev, s, 4096, &w, &rc);
    assert_string_equal(got, "event: gap\ndata: {\"from\":1,\"to\":6}\n\n"
                             "id: 7\ndata: {\"n\":7}\n\nid: 8\ndata: {\"n\":8}\n\n"
                             "id: 9\ndata: {\"n\":9}\n\nid: 10\ndata: {\"n\":10}\n\n");
    free(got);

    /* resuming right at the edge of the ring: no gap */
    struct event_sub *e = events_subscribe(ev, 6, NULL, on_wake, &w);
    got = drain(ev, e, 4096, &w, &rc);
    assert_true(starts_with(got, "id: 7\n"));
    free(got);
    events_unsubscribe(ev, e);
    /* one before it: a gap of exactly one */
    e = events_subscribe(ev, 5, NULL, on_wake, &w);
    got = drain(ev, e, 4096, &w, &rc);
    assert_true(starts_with(got, "event: gap\ndata: {\"from\":6,\"to\":6}\n\nid: 7\n"));
    free(got);
    events_unsubscribe(ev, e);
    events_unsubscribe(ev, s);
    events_free(ev);
}

static void test_swarm_filter(void **state)
{
    (void)state;
    struct events *ev = events_new(64);
    struct wakes w = {0};
    struct event_sub *a = events_subscribe(ev, 0, "a", on_wake, &w);
    struct event_sub *all = events_subscribe(ev, 0, NULL, on_wake, &w);
    publish_range(ev, 1, 12);
    ssize_t rc;
    char *got = drain(ev, a, 4096, &w, &rc);
    /* "a" has the even seqs, except those of no swarm (multiples of 5) */
    assert_string_equal(got, "id: 2\ndata: {\"n\":2}\n\nid: 4\ndata: {\"n\":4}\n\n"
                             "id: 6\ndata: {\"n\":6}\n\nid: 8\ndata: {\"n\":8}\n\n"
                             "id: 12\ndata: {\"n\":12}\n\n");
    free(got);
    got = drain(ev, all, 4096, &w, &rc);
    int frames = 0;
    for (const char *p = got; (p = strstr(p, "id: ")); p++)
        frames++;
    assert_int_equal(frames, 12);
    assert_non_null(strstr(got, "id: 10\ndata: {\"n\":10}\n\n"));
    free(got);
    events_unsubscribe(ev, a);
    events_unsubscribe(ev, all);
    events_free(ev);
}

/* A reader with a tiny buffer gets the same bytes, frame pieces and all. */
static void test_partial_reads(void **state)
{
    (void)state;
    struct events *ev = events_new(64);
    struct wakes w = {0};
    struct event_sub *big = events_subscribe(ev, 0, NULL, on_wake, &w);
    struct event_sub *tiny = events_subscribe(ev, 0, NULL, on_wake, &w);
    publish_range(ev, 1, 40);
    ssize_t rc;
    char *want = drain(ev, big, 1 << 15, &w, &rc);
    for (size_t chunk = 1; chunk <= 7; chunk += 3) {
        struct event_sub *t = events_subscribe(ev, 0, NULL, on_wake, &w);
        char *got = drain(ev, t, chunk, &w, &rc);
        assert_string_equal(got, want);
        free(got);
        events_unsubscribe(ev, t);
    }
    /* a frame cut between reads resumes where it stopped, even after new events */
    char buf[10];
    assert_int_equal(events_read(ev, tiny, buf, 10, on_arm, &w), 10);
    assert_memory_equal(buf, want, 10);
    publish_range(ev, 41, 41);
    char *rest = drain(ev, tiny, 3, &w, &rc);
    assert_memory_equal(rest, want + 10, strlen(want) - 10);
    assert_non_null(strstr(rest, "id: 41\n"));
    free(rest);
    free(want);
    events_unsubscribe(ev, big);
    events_unsubscribe(ev, tiny);
    events_free(ev);
}

static void test_close_and_last_seq(void **state)
{
    (void)state;
    struct events *ev = events_new(8);
    events_set_last_seq(ev, 100);
    assert_int_equal(events_last_seq(ev), 100);
    struct wakes w = {0};
    /* 0: what the ring holds, which is nothing yet */
    struct event_sub *s = events_subscribe(ev, 0, NULL, on_wake, &w);
    ssize_t rc;
    char *got = drain(ev, s, 256, &w, &rc);
    assert_string_equal(got, "");
    free(got);
    assert_int_equal(w.armed, 1);
    /* an id from before the start, with no backfill: reported missing */
    struct wakes w2 = {0};
    struct event_sub *old = events_subscribe(ev, 1, NULL, on_wake, &w2);
    got = drain(ev, old, 256, &w2, &rc);
    assert_string_equal(got, "event: gap\ndata: {\"from\":2,\"to\":100}\n\n");
    free(got);
    events_unsubscribe(ev, old);
    publish_range(ev, 101, 102);
    assert_int_equal(w.woken, 1);
    events_close(ev);
    /* the backlog first, then the end of the stream */
    got = drain(ev, s, 256, &w, &rc);
    assert_string_equal(got, "id: 101\ndata: {\"n\":101}\n\nid: 102\ndata: {\"n\":102}\n\n");
    free(got);
    assert_int_equal(rc, -1);
    char b[16];
    assert_int_equal(events_read(ev, s, b, sizeof b, on_arm, &w), -1);
    events_unsubscribe(ev, s);
    events_free(ev); /* with subscribers gone */

    ev = events_new(8);
    events_subscribe(ev, 0, NULL, on_wake, &w);
    events_subscribe(ev, 0, "a", on_wake, &w);
    publish_range(ev, 1, 20);
    events_free(ev); /* frees subscribers still attached (ASan checks the rest) */
}

/* Events older than the ring come from the backfill (the store), in order, then the ring
 * takes over; a failing backfill falls back to a gap frame. */
struct backfill_log {
    int calls;
    int fail;
    uint64_t chunk; /* at most this many per call */
};

static int64_t backfill(void *ctx, uint64_t from, uint64_t to, const char *swarm, struct buf *out)
{
    struct backfill_log *bl = ctx;
    bl->calls++;
    if (bl->fail)
        return -1;
    if (to - from + 1 > bl->chunk)
        to = from + bl->chunk - 1;
    for (uint64_t seq = from; seq <= to; seq++) {
        const char *sw = seq % 5 == 0 ? NULL : seq % 2 ? "b" : "a";
        if (swarm && (!sw || strcmp(sw, swarm)))
            continue;
        buf_addf(out, "id: %llu\ndata: {\"n\":%llu,\"from\":\"store\"}\n\n",
                 (unsigned long long)seq, (unsigned long long)seq);
    }
    return (int64_t)to;
}

static void test_backfill(void **state)
{
    (void)state;
    struct events *ev = events_new(4);
    struct backfill_log bl = {0, 0, 1000};
    events_set_backfill(ev, backfill, &bl);
    publish_range(ev, 1, 10); /* the ring keeps 7..10 */
    struct wakes w = {0};
    ssize_t rc;

    struct event_sub *s = events_subscribe(ev, 2, NULL, on_wake, &w);
    char *got = drain(ev, s, 4096, &w, &rc);
    assert_true(starts_with(got, "id: 3\ndata: {\"n\":3,\"from\":\"store\"}\n\n"));
    const char *p = got;
    for (uint64_t seq = 3; seq <= 10; seq++) {
        char want[32];
        snprintf(want, sizeof want, "id: %llu\n", (unsigned long long)seq);
        const char *q = strstr(p, want);
        if (!q)
            fail_msg("seq %llu missing or out of order in:\n%s", (unsigned long long)seq, got);
        p = q + 1;
    }
    assert_null(strstr(got, "id: 7\ndata: {\"n\":7,\"from\"")); /* 7.. from the ring */
    assert_null(strstr(got, "event: gap"));
    free(got);
    events_unsubscribe(ev, s);

    /* a backfill that returns a little at a time is called until it has caught up */
    bl.calls = 0;
    bl.chunk = 1;
    s = events_subscribe(ev, 2, "a", on_wake, &w);
    got = drain(ev, s, 4096, &w, &rc);
    assert_int_equal(bl.calls, 4); /* 3, 4, 5, 6 */
    assert_string_equal(got, "id: 4\ndata: {\"n\":4,\"from\":\"store\"}\n\n"
                             "id: 6\ndata: {\"n\":6,\"from\":\"store\"}\n\n"
                             "id: 8\ndata: {\"n\":8}\n\n");
    free(got);
    events_unsubscribe(ev, s);

    /* after=0 means the ring only: no backfill */
    bl.calls = 0;
    s = events_subscribe(ev, 0, NULL, on_wake, &w);
    got = drain(ev, s, 4096, &w, &rc);
    assert_int_equal(bl.calls, 0);
    assert_true(starts_with(got, "id: 7\n"));
    free(got);
    events_unsubscribe(ev, s);

    bl.fail = 1;
    s = events_subscribe(ev, 2, NULL, on_wake, &w);
    got = drain(ev, s, 4096, &w, &rc);
    assert_true(starts_with(got, "event: gap\ndata: {\"from\":3,\"to\":6}\n\nid: 7\n"));
    free(got);
    events_unsubscribe(ev, s);
    events_free(ev);
}

/* A publisher thread against a reader: every seq arrives once, in order, or inside a gap
 * frame that names it; the reader ends at the last seq. */
struct race {
    struct events *ev;
    uint64_t n;
};

static void *publisher(void *arg)
{
    struct race *r = arg;
    for (uint64_t seq = 1; seq <= r->n;) {
        uint64_t k = 1 + seq % 7;
        if (seq + k - 1 > r->n)
            k = r->n - seq + 1;
        publish_range(r->ev, seq, seq + k - 1);
        seq += k;
    }
    return NULL;
}

static void noop(void *arg)
{
    (void)arg;
}

static void test_publisher_races_reader(void **state)
{
    (void)state;
    struct race r = {events_new(32), 20000};
    struct event_sub *s = events_subscribe(r.ev, 0, NULL, noop, NULL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, publisher, &r), 0);
    uint64_t next = 1;
    char buf[512];
    struct buf_acc {
        char *p;
        size_t len, cap;
    } acc = {xmalloc(4096), 0, 4096};
    while (next <= r.n) {
        ssize_t n = events_read(r.ev, s, buf, sizeof buf, noop, NULL);
        assert_true(n >= 0);
        acc.p = xgrow(acc.p, 1, acc.len + (size_t)n + 1, &acc.cap);
        memcpy(acc.p + acc.len, buf, (size_t)n);
        acc.len += (size_t)n;
        acc.p[acc.len] = 0;
        /* consume whole frames */
        char *end;
        while ((end = strstr(acc.p, "\n\n"))) {
            unsigned long long a, b;
            if (sscanf(acc.p, "event: gap\ndata: {\"from\":%llu,\"to\":%llu}", &a, &b) == 2) {
                assert_int_equal(a, next);
                assert_true(b >= a);
                next = b + 1;
            } else if (sscanf(acc.p, "id: %llu\ndata: {\"n\":%llu}", &a, &b) == 2) {
                assert_int_equal(a, next);
                assert_int_equal(b, a);
                next = a + 1;
            } else {
                fail_msg("unexpected frame: %.60s", acc.p);
            }
            size_t used = (size_t)(end + 2 - acc.p);
            memmove(acc.p, end + 2, acc.len - used + 1);
            acc.len -= used;
        }
    }
    pthread_join(th, NULL);
    assert_int_equal(next, r.n + 1);
    assert_int_equal(acc.len, 0);
    free(acc.p);
    events_unsubscribe(r.ev, s);
    events_free(r.ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames_and_resume),      cmocka_unit_test(test_gap_when_behind),
        cmocka_unit_test(test_swarm_filter),           cmocka_unit_test(test_partial_reads),
        cmocka_unit_test(test_close_and_last_seq),     cmocka_unit_test(test_backfill),
        cmocka_unit_test(test_publisher_races_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
