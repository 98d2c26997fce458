/* test_merkle: RFC 6962 trees and proofs for every size up to 130 (most not powers of two),
 * checked against a reference tree hash written here from the RFC's definition, and
 * proofs that must fail when any hash, index or size is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "merkle.h"

#define N 130
static merkle_hash leaves[N];

/* MTH from RFC 6962 2.1, with hashes computed by hand (no merkle.c helpers). */
static void ref_mth(uint64_t lo, uint64_t hi, uint8_t out[32])
{
    uint64_t n = hi - lo;
    if (n == 0) {
        crypto_hash_sha256(out, (const uint8_t *)"", 0);
        return;
    }
    if (n == 1) {
        memcpy(out, leaves[lo], 32);
        return;
    }
    uint64_t k = 1;
    while (k * 2 < n)
        k *= 2;
    uint8_t buf[65];
    buf[0] = 1;
    ref_mth(lo, lo + k, buf + 1);
    ref_mth(lo + k, hi, buf + 33);
    crypto_hash_sha256(out, buf, sizeof buf);
}

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    for (int i = 0; i < N; i++) {
        char data[32];
        int len = snprintf(data, sizeof data, "entry %d", i);
        uint8_t in[64];
        in[0] = 0;
        memcpy(in + 1, data, (size_t)len);
        crypto_hash_sha256(leaves[i], in, (size_t)len + 1);
    }
    return 0;
}

static void test_leaf_and_node(void **state)
{
    (void)state;
    merkle_hash a, b;
    merkle_leaf("entry 0", 7, a);
    assert_memory_equal(a, leaves[0], 32);
    /* the empty tree's hash is SHA-256("") (RFC 6962 2.1) */
    merkle_empty(b);
    static const char empty_hex[] =
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    char hex[65];
    merkle_hex(b, hex);
    assert_string_equal(hex, empty_hex);
    assert_int_equal(merkle_unhex(empty_hex, a), 0);
    assert_memory_equal(a, b, 32);
    assert_int_not_equal(merkle_unhex("E3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", a), 0);
    assert_int_not_equal(merkle_unhex("e3b0", a), 0);
}

static void test_frontier_matches_reference(void **state)
{
    (void)state;
    struct merkle_frontier f;
    merkle_frontier_init(&f);
    for (uint64_t n = 0; n <= N; n++) {
        merkle_hash got, want;
        merkle_frontier_root(&f, got);
        ref_mth(0, n, want);
        assert_memory_equal(got, want, 32);
        merkle_range_root(leaves, 0, n, got);
        assert_memory_equal(got, want, 32);
        /* the stored text form round-trips */
        char *s = merkle_frontier_format(&f);
        struct merkle_frontier g;
        assert_int_equal(merkle_frontier_parse(s, &g), 0);
        assert_int_equal(g.size, n);
        merkle_frontier_root(&g, got);
        assert_memory_equal(got, want, 32);
        free(s);
        if (n < N)
            merkle_frontier_add(&f, leaves[n]);
    }
    struct merkle_frontier g;
    assert_int_not_equal(merkle_frontier_parse("3:abc", &g), 0);
    assert_int_not_equal(merkle_frontier_parse("x", &g), 0);
}

static void test_inclusion(void **state)
{
    (void)state;
    merkle_hash path[MERKLE_MAX_PATH];
    unsigned n;
    for (uint64_t size = 1; size <= N; size++) {
        merkle_hash root;
        ref_mth(0, size, root);
        for (uint64_t i = 0; i < size; i++) {
            assert_int_equal(merkle_inclusion_proof(leaves, size, i, path, &n), 0);
            assert_int_equal(merkle_verify_inclusion(leaves[i], i, size, path, n, root), 0);
            /* wrong leaf, wrong index, wrong size, a flipped bit: all refused */
            if (size > 1)
                assert_int_not_equal(
                    merkle_verify_inclusion(leaves[(i + 1) % size], i, size, path, n, root), 0);
            if (size > 1)
                assert_int_not_equal(
                    merkle_verify_inclusion(leaves[i], (i + 1) % size, size, path, n, root), 0);
            /* the same path does not prove the leaf in the next tree */
            if (size < N) {
                merkle_hash next;
                ref_mth(0, size + 1, next);
                assert_int_not_equal(
                    merkle_verify_inclusion(leaves[i], i, size + 1, path, n, next), 0);
            }
            if (n) {
                path[n / 2][i % 32] ^= 1;
                assert_int_not_equal(merkle_verify_inclusion(leaves[i], i, size, path, n, root),
                                     0);
                path[n / 2][i % 32] ^= 1;
                assert_int_not_equal(
                    merkle_verify_inclusion(leaves[i], i, size, path, n - 1, root), 0);
            }
        }
        assert_int_not_equal(merkle_inclusion_proof(leaves, size, size, path, &n), 0);
    }
}

static void test_consistency(void **state)
{
    (void)state;
    merkle_hash path[MERKLE_MAX_PATH];
    unsigned n;
    for (uint64_t b = 1; b <= 70; b++) {
        merkle_hash rb;
        ref_mth(0, b, rb);
        for (uint64_t a = 0; a <= b; a++) {
            merkle_hash ra;
            ref_mth(0, a, ra);
            assert_int_equal(merkle_consistency_proof(leaves, a, b, path, &n), 0);
            assert_int_equal(merkle_verify_consistency(a, b, ra, rb, path, n), 0);
            if (a > 0 && a < b) {
                merkle_hash bad;
                memcpy(bad, ra, 32);
                bad[0] ^= 0x80;
                assert_int_not_equal(merkle_verify_consistency(a, b, bad, rb, path, n), 0);
                assert_int_not_equal(merkle_verify_consistency(a, b, ra, bad, path, n), 0);
                path[0][5] ^= 1;
                assert_int_not_equal(merkle_verify_consistency(a, b, ra, rb, path, n), 0);
                path[0][5] ^= 1;
                if (b < 70) {
                    merkle_hash rb1;
                    ref_mth(0, b + 1, rb1);
                    assert_int_not_equal(merkle_verify_consistency(a, b + 1, ra, rb1, path, n),
                                         0);
                }
            }
        }
        assert_int_not_equal(merkle_consistency_proof(leaves, b + 1, b, path, &n), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leaf_and_node),
        cmocka_unit_test(test_frontier_matches_reference),
        cmocka_unit_test(test_inclusion),
        cmocka_unit_test(test_consistency),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
