/* test_util: the small building blocks under everything: buf (growth, the size cap and its
 * all-or-nothing appends, JSON string escaping checked against jansson), map (against a
 * brute-force reference, tombstones, borrowed keys), strvec, xalloc and clock helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/map.h"
#include "util/strvec.h"
#include "util/xalloc.h"

/* ------------------------------------------------------------------------------------ */
/* buf */

static void test_buf_basics(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    assert_non_null(b.ptr);
    assert_string_equal(b.ptr, "");
    assert_int_equal(b.len, 0);
    buf_release(&b); /* releasing an empty buffer is fine */
    assert_string_equal(b.ptr, "");

    assert_int_equal(buf_adds(&b, "hello"), 0);
    assert_int_equal(buf_addch(&b, ','), 0);
    assert_int_equal(buf_addf(&b, " %s #%d", "world", 42), 0);
    assert_int_equal(buf_add(&b, "!\0hidden", 1), 0);
    assert_string_equal(b.ptr, "hello, world #42!");
    assert_int_equal(b.len, strlen("hello, world #42!"));
    assert_int_equal(buf_add(&b, "", 0), 0);
    assert_int_equal(b.len, 17);

    /* embedded NULs count in len */
    assert_int_equal(buf_add(&b, "\0x", 2), 0);
    assert_int_equal(b.len, 19);
    assert_int_equal(b.ptr[17], 0);
    assert_int_equal(b.ptr[18], 'x');
    assert_int_equal(b.ptr[19], 0);

    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.ptr, "");
    assert_true(b.alloc > 0); /* kept for reuse */

    buf_adds(&b, "abc");
    size_t n = 0;
    char *s = buf_detach(&b, &n);
    assert_string_equal(s, "abc");
    assert_int_equal(n, 3);
    free(s);
    assert_string_equal(b.ptr, "");
    assert_int_equal(b.len, 0);
    assert_int_equal(b.alloc, 0);

    /* detaching an empty buffer still gives an owned string */
    s = buf_detach(&b, NULL);
    assert_string_equal(s, "");
    free(s);
    buf_release(&b);
}

static void test_buf_growth(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    for (int i = 0; i < 100000; i++)
        assert_int_equal(buf_addf(&b, "%05d", i % 100000), 0);
    assert_int_equal(b.len, 500000);
    assert_int_equal(b.ptr[b.len], 0);
    for (int i = 0; i < 100000; i += 997) {
        char want[16];
        snprintf(want, sizeof want, "%05d", i);
        assert_memory_equal(b.ptr + 5 * i, want, 5);
    }
    /* one large formatted append */
    buf_reset(&b);
    assert_int_equal(buf_addf(&b, "%0*d", 70000, 7), 0);
    assert_int_equal(b.len, 70000);
    assert_int_equal(b.ptr[69999], '7');
    buf_release(&b);
}

static void test_buf_cap(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 10);
    assert_int_equal(buf_adds(&b, "0123456789"), 0); /* exactly the cap */
    assert_int_equal(buf_addch(&b, 'x'), -1);
    assert_int_equal(buf_adds(&b, "x"), -1);
    assert_int_equal(buf_addf(&b, "%d", 1), -1);
    assert_string_equal(b.ptr, "0123456789");
    assert_int_equal(b.len, 10);
    assert_int_equal(buf_add(&b, "", 0), 0);

    buf_reset(&b);
    assert_int_equal(buf_adds(&b, "abc"), 0);
    assert_int_equal(buf_addf(&b, "%s", "12345678"), -1); /* would be 11 */
    assert_string_equal(b.ptr, "abc");
    assert_int_equal(buf_addf(&b, "%s", "1234567"), 0); /* exactly 10 */
    assert_string_equal(b.ptr, "abc1234567");
    /* a huge size does not wrap around the check */
    assert_int_equal(buf_add(&b, "z", SIZE_MAX), -1);
    assert_int_equal(buf_add(&b, "z", SIZE_MAX - 5), -1);
    assert_string_equal(b.ptr, "abc1234567");

    /* release keeps the cap */
    buf_release(&b);
    assert_int_equal(b.max, 10);
    assert_int_equal(buf_adds(&b, "0123456789A"), -1);
    assert_int_equal(b.len, 0);
    buf_release(&b);
}

/* Append s as a JSON string and read it back with jansson. */
static void json_roundtrip(const char *s)
{
    struct buf b = BUF_INIT;
    assert_int_equal(buf_add_json_str(&b, s), 0);
    json_error_t je;
    json_t *v = json_loads(b.ptr, JSON_DECODE_ANY, &je);
    if (!v)
        fail_msg("jansson rejects %s: %s", b.ptr, je.text);
    assert_true(json_is_string(v));
    assert_string_equal(json_string_value(v), s);
    json_decref(v);
    /* nothing below 0x20 or 0x7f travels raw */
    for (size_t i = 0; i < b.len; i++)
        assert_false((unsigned char)b.ptr[i] < 0x20 || b.ptr[i] == 0x7f);
    buf_release(&b);
}

static void test_buf_json_str(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    buf_add_json_str(&b, "a\"b\\c\nd\re\tf\x01g\x1fh\x7f");
    assert_string_equal(b.ptr, "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001fh\\u007f\"");
    buf_reset(&b);
    buf_add_json_str(&b, "");
    assert_string_equal(b.ptr, "\"\"");
    buf_reset(&b);
    buf_add_json_str(&b, "caf\xc3\xa9 \xf0\x9f\x98\x80 </script>");
    assert_string_equal(b.ptr, "\"caf\xc3\xa9 \xf0\x9f\x98\x80 </script>\"");
    buf_release(&b);

    json_roundtrip("plain");
    json_roundtrip("caf\xc3\xa9 \xe2\x82\xac");
    char all[128];
    for (int i = 1; i < 128; i++)
        all[i - 1] = (char)i;
    all[127] = 0;
    json_roundtrip(all);
    srand(3);
    for (int round = 0; round < 200; round++) {
        char s[64];
        int n = rand() % 63;
        for (int i = 0; i < n; i++)
            s[i] = (char)(1 + rand() % 127);
        s[n] = 0;
        json_roundtrip(s);
    }
}

/* The cap promise holds for every append, the escaping one too: a string that does not fit
 * leaves the buffer as it was (not half a string with an open quote). */
static void test_buf_json_str_cap_all_or_nothing(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 16);
    assert_int_equal(buf_adds(&b, "{\"k\":"), 0);
    int rc = buf_add_json_str(&b, "a value that is far too long");
    char after[32];
    snprintf(after, sizeof after, "%s", b.ptr);
    size_t len = b.len;
    if (strcmp(after, "{\"k\":"))
        buf_release(&b); /* about to fail: do not leak on the way out */
    assert_int_equal(rc, -1);
    assert_string_equal(after, "{\"k\":");
    assert_int_equal(len, 5);
    /* what fits still goes in */
    assert_int_equal(buf_add_json_str(&b, "short"), 0);
    assert_string_equal(b.ptr, "{\"k\":\"short\"");
    buf_release(&b);
}

/* ------------------------------------------------------------------------------------ */
/* map */

static void test_map_basics(void **state)
{
    (void)state;
    struct map m;
    map_init(&m);
    assert_int_equal(map_get(&m, "x"), MAP_NONE);
    assert_int_equal(map_del(&m, "x"), MAP_NONE);
    map_put(&m, "alpha", 1);
    map_put(&m, "beta", 2);
    map_put(&m, "", 3); /* the empty string is a key like any other */
    assert_int_equal(map_get(&m, "alpha"), 1);
    assert_int_equal(map_get(&m, "beta"), 2);
    assert_int_equal(map_get(&m, ""), 3);
    assert_int_equal(map_get(&m, "alph"), MAP_NONE);
    assert_int_equal(map_get(&m, "alphaa"), MAP_NONE);
    assert_int_equal(m.n, 3);

    map_put(&m, "alpha", 10); /* overwrite */
    assert_int_equal(map_get(&m, "alpha"), 10);
    assert_int_equal(m.n, 3);

    assert_int_equal(map_del(&m, "alpha"), 10);
    assert_int_equal(map_get(&m, "alpha"), MAP_NONE);
    assert_int_equal(map_del(&m, "alpha"), MAP_NONE);
    assert_int_equal(m.n, 2);
    map_put(&m, "alpha", 11);
    assert_int_equal(map_get(&m, "alpha"), 11);
    assert_int_equal(m.n, 3);
    map_release(&m);
    assert_int_equal(m.n, 0);
    assert_int_equal(map_get(&m, "beta"), MAP_NONE);
    map_release(&m);

    /* the hash is stable within the process and looks at every byte */
    assert_true(map_hash("abc", 3) == map_hash("abc", 3));
    assert_true(map_hash("abc", 3) != map_hash("abd", 3));
    assert_true(map_hash("abc", 2) == map_hash("abX", 2));
}

/* Overwriting a key re-points the slot at the new key's storage, so the caller may free
 * the old one (the engine re-interns strings this way). */
static void test_map_borrowed_keys(void **state)
{
    (void)state;
    struct map m;
    map_init(&m);
    char *k1 = xstrdup("task-1");
    map_put(&m, k1, 1);
    char *k2 = xstrdup("task-1");
    map_put(&m, k2, 2);
    free(k1); /* ASan would catch a slot still pointing here */
    assert_int_equal(map_get(&m, "task-1"), 2);
    for (int i = 0; i < 100; i++) { /* force rehashes while k2 is the key */
        char *k = xasprintf("filler-%d", i);
        map_put(&m, k, (uint32_t)i);
        assert_int_equal(map_del(&m, k), (uint32_t)i);
        free(k);
    }
    assert_int_equal(map_get(&m, "task-1"), 2);
    map_release(&m);
    free(k2);
}

#define NKEYS 3000
static char keys[NKEYS][16];

static void test_map_against_reference(void **state)
{
    (void)state;
    static uint32_t ref[NKEYS];
    static int live[NKEYS];
    struct map m;
    map_init(&m);
    for (int i = 0; i < NKEYS; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        live[i] = 0;
    }
    srand(5);
    size_t n = 0;
    for (int round = 0; round < 200000; round++) {
        int i = rand() % NKEYS;
        switch (rand() % 4) {
        case 0:
        case 1: {
            uint32_t v = (uint32_t)rand();
            if (v == MAP_NONE)
                v = 0;
            map_put(&m, keys[i], v);
            n += !live[i];
            live[i] = 1;
            ref[i] = v;
            break;
        }
        case 2:
            assert_int_equal(map_del(&m, keys[i]), live[i] ? ref[i] : MAP_NONE);
            n -= live[i];
            live[i] = 0;
            break;
        default:
            assert_int_equal(map_get(&m, keys[i]), live[i] ? ref[i] : MAP_NONE);
        }
        if (round % 20000 == 0) {
            assert_int_equal(m.n, n);
            for (int k = 0; k < NKEYS; k++)
                assert_int_equal(map_get(&m, keys[k]), live[k] ? ref[k] : MAP_NONE);
        }
        /* never full: a probe always ends */
        assert_true(m.used < m.cap);
    }
    assert_int_equal(m.n, n);
    for (int k = 0; k < NKEYS; k++)
        assert_int_equal(map_get(&m, keys[k]), live[k] ? ref[k] : MAP_NONE);
    map_release(&m);
}

/* Tombstones do not pile up: endless put/delete of fresh keys keeps the table small. */
static void test_map_tombstones(void **state)
{
    (void)state;
    struct map m;
    map_init(&m);
    map_put(&m, "resident", 7);
    char k[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(k, sizeof k, "transient-%d", i);
        map_put(&m, k, (uint32_t)i);
        assert_int_equal(map_get(&m, k), (uint32_t)i);
        assert_int_equal(map_del(&m, k), (uint32_t)i);
    }
    assert_int_equal(m.n, 1);
    assert_true(m.cap <= 64);
    assert_int_equal(map_get(&m, "resident"), 7);
    assert_int_equal(map_get(&m, "transient-99999"), MAP_NONE);
    map_release(&m);
}

/* ------------------------------------------------------------------------------------ */
/* strvec */

static void test_strvec(void **state)
{
    (void)state;
    struct strvec v = STRVEC_INIT;
    char *s = strvec_join(&v, ",");
    assert_string_equal(s, "");
    free(s);
    assert_int_equal(strvec_find(&v, "a"), -1);

    strvec_push(&v, "pear");
    strvec_push_nodup(&v, xstrdup("apple"));
    char mutable[] = "fig";
    strvec_push(&v, mutable);
    mutable[0] = 'X'; /* push copies */
    assert_int_equal(v.n, 3);
    assert_string_equal(v.v[2], "fig");
    assert_int_equal(strvec_find(&v, "apple"), 1);
    assert_int_equal(strvec_find(&v, "Apple"), -1);
    s = strvec_join(&v, ", ");
    assert_string_equal(s, "pear, apple, fig");
    free(s);

    strvec_sort(&v);
    s = strvec_join(&v, "\n");
    assert_string_equal(s, "apple\nfig\npear");
    free(s);

    struct strvec c = STRVEC_INIT;
    strvec_push(&c, "first");
    strvec_copy(&c, &v);
    assert_int_equal(c.n, 4);
    assert_string_equal(c.v[1], "apple");
    assert_true(c.v[1] != v.v[0]); /* deep */
    strvec_release(&v);
    assert_int_equal(v.n, 0);
    assert_null(v.v);
    assert_string_equal(c.v[3], "pear");
    strvec_release(&c);

    for (int i = 0; i < 1000; i++) {
        char x[16];
        snprintf(x, sizeof x, "%d", i);
        strvec_push(&v, x);
    }
    assert_int_equal(strvec_find(&v, "999"), 999);
    strvec_release(&v);
}

static void test_strvec_split(void **state)
{
    (void)state;
    struct strvec v = STRVEC_INIT;
    strvec_split(&v, "a,,b,", ',');
    assert_int_equal(v.n, 2);
    assert_string_equal(v.v[0], "a");
    assert_string_equal(v.v[1], "b");
    strvec_release(&v);

    strvec_split(&v, "", ',');
    assert_int_equal(v.n, 0);
    strvec_split(&v, NULL, ',');
    assert_int_equal(v.n, 0);
    strvec_split(&v, ",,,", ',');
    assert_int_equal(v.n, 0);

    strvec_split(&v, "one", '\n');
    strvec_split(&v, "\ntwo\nthree\n", '\n'); /* appends */
    assert_int_equal(v.n, 3);
    assert_string_equal(v.v[0], "one");
    assert_string_equal(v.v[2], "three");
    /* join and split are inverses for non-empty items without the separator */
    char *j = strvec_join(&v, "\n");
    struct strvec w = STRVEC_INIT;
    strvec_split(&w, j, '\n');
    assert_int_equal(w.n, v.n);
    for (size_t i = 0; i < v.n; i++)
        assert_string_equal(w.v[i], v.v[i]);
    free(j);
    strvec_release(&w);
    strvec_release(&v);
}

/* ------------------------------------------------------------------------------------ */
/* xalloc, clock */

static void test_xalloc(void **state)
{
    (void)state;
    size_t cap = 0;
    int *a = xgrow(NULL, sizeof *a, 1, &cap);
    assert_true(cap >= 1);
    size_t before = cap;
    int *same = xgrow(a, sizeof *a, cap, &cap);
    assert_ptr_equal(same, a);
    assert_int_equal(cap, before);
    for (size_t need = 1; need < 100000; need += 777) {
        a = xgrow(a, sizeof *a, need, &cap);
        assert_true(cap >= need);
        a[need - 1] = 1; /* ASan: the space is really there */
    }
    free(a);

    char *s = xstrndup("abcdef", 3);
    assert_string_equal(s, "abc");
    free(s);
    s = xasprintf("%s-%03d", "x", 7);
    assert_string_equal(s, "x-007");
    free(s);
    void *z = xcalloc(0, 0); /* never NULL */
    assert_non_null(z);
    free(z);
}

/* fs_read_file: whole files, their length, the cap, and refusals that say why (errno). */
static void test_fs_read_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/s2-test-fs-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], link[256];
    snprintf(path, sizeof path, "%s/f", dir);
    snprintf(link, sizeof link, "%s/l", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int i = 0; i < 100000; i++) /* several read() chunks, and a NUL inside */
        fputc(i == 5 ? 0 : 'a' + i % 26, f);
    fclose(f);
    size_t len = 0;
    char *t = fs_read_file(path, 100000, 0, &len);
    assert_non_null(t);
    assert_int_equal(len, 100000);
    assert_int_equal(t[5], 0);
    assert_int_equal(t[6], 'a' + 6);
    assert_int_equal(t[len], 0);
    free(t);
    errno = 0;
    assert_null(fs_read_file(path, 99999, 0, NULL)); /* one byte over the cap */
    assert_int_equal(errno, EFBIG);
    assert_int_equal(symlink(path, link), 0);
    t = fs_read_file(link, 1 << 20, 0, NULL);
    assert_non_null(t);
    free(t);
    errno = 0;
    assert_null(fs_read_file(link, 1 << 20, O_NOFOLLOW, NULL));
    assert_int_equal(errno, ELOOP);
    errno = 0;
    assert_null(fs_read_file(dir, 1 << 20, 0, NULL)); /* a directory: open works, read fails */
    assert_int_equal(errno, EISDIR);
    unlink(link);
    unlink(path);
    errno = 0;
    assert_null(fs_read_file(path, 1 << 20, 0, NULL));
    assert_int_equal(errno, ENOENT);
    rmdir(dir);
}

static void test_clock(void **state)
{
    (void)state;
    char out[32];
    clock_format_iso(0, out, sizeof out);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    clock_format_iso(1700000000123LL, out, sizeof out);
    assert_string_equal(out, "2023-11-14T22:13:20.123Z");
    clock_format_iso(1700000000005LL, out, sizeof out);
    assert_string_equal(out, "2023-11-14T22:13:20.005Z");
    int64_t a = clock_mono_ns(), b = clock_mono_ns();
    assert_true(b >= a);
    assert_true(clock_wall_ms() > 1600000000000LL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_basics),
        cmocka_unit_test(test_buf_growth),
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_buf_json_str),
        cmocka_unit_test(test_buf_json_str_cap_all_or_nothing),
        cmocka_unit_test(test_map_basics),
        cmocka_unit_test(test_map_borrowed_keys),
        cmocka_unit_test(test_map_against_reference),
        cmocka_unit_test(test_map_tombstones),
        cmocka_unit_test(test_strvec),
        cmocka_unit_test(test_strvec_split),
        cmocka_unit_test(test_xalloc),
        cmocka_unit_test(test_fs_read_file),
        cmocka_unit_test(test_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
