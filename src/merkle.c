/* merkle.c: RFC 6962 tree hashes and proofs. The proof generators are the RFC's recursive
 * definitions read literally; the verifiers are RFC 9162's iterative algorithms, so a
 * generator bug cannot hide behind a matching verifier bug. */
#include "merkle.h"
#include "util/xalloc.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void merkle_leaf(const void *data, size_t len, merkle_hash out)
{
    crypto_hash_sha256_state st;
    static const uint8_t zero = 0x00;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, &zero, 1);
    crypto_hash_sha256_update(&st, data, len);
    crypto_hash_sha256_final(&st, out);
}

void merkle_node(const merkle_hash left, const merkle_hash right, merkle_hash out)
{
    uint8_t in[1 + 2 * MERKLE_HASH];
    in[0] = 0x01;
    memcpy(in + 1, left, MERKLE_HASH);
    memcpy(in + 1 + MERKLE_HASH, right, MERKLE_HASH);
    crypto_hash_sha256(out, in, sizeof in);
}

void merkle_empty(merkle_hash out)
{
    crypto_hash_sha256(out, (const uint8_t *)"", 0);
}

void merkle_frontier_init(struct merkle_frontier *f)
{
    memset(f, 0, sizeof *f);
}

static unsigned popcount64(uint64_t x)
{
    return (unsigned)__builtin_popcountll(x);
}

void merkle_frontier_add(struct merkle_frontier *f, const merkle_hash leaf_hash)
{
    memcpy(f->node[f->n++], leaf_hash, MERKLE_HASH);
    /* Two subtrees of equal size merge; sizes follow the bits of the count. */
    for (uint64_t s = f->size; s & 1; s >>= 1) {
        merkle_node(f->node[f->n - 2], f->node[f->n - 1], f->node[f->n - 2]);
        f->n--;
    }
    f->size++;
}

void merkle_frontier_root(const struct merkle_frontier *f, merkle_hash out)
{
    if (f->n == 0) {
        merkle_empty(out);
        return;
    }
    merkle_hash r;
    memcpy(r, f->node[f->n - 1], MERKLE_HASH);
    for (unsigned i = f->n - 1; i-- > 0;)
        merkle_node(f->node[i], r, r);
    memcpy(out, r, MERKLE_HASH);
}

void merkle_hex(const merkle_hash h, char out[2 * MERKLE_HASH + 1])
{
    sodium_bin2hex(out, 2 * MERKLE_HASH + 1, h, MERKLE_HASH);
}

int merkle_unhex(const char *s, merkle_hash out)
{
    if (!s || strlen(s) != 2 * MERKLE_HASH)
        return -1;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return -1;
    size_t bin = 0;
    if (sodium_hex2bin(out, MERKLE_HASH, s, 2 * MERKLE_HASH, NULL, &bin, NULL) ||
        bin != MERKLE_HASH)
        return -1;
    return 0;
}

char *merkle_frontier_format(const struct merkle_frontier *f)
{
    size_t cap = 24 + f->n * (2 * MERKLE_HASH + 1) + 1;
    char *s = xmalloc(cap);
    int off = snprintf(s, cap, "%" PRIu64 ":", f->size);
    for (unsigned i = 0; i < f->n; i++) {
        merkle_hex(f->node[i], s + off);
        off += 2 * MERKLE_HASH;
        if (i + 1 < f->n)
            s[off++] = ',';
    }
    s[off] = 0;
    return s;
}

int merkle_frontier_parse(const char *s, struct merkle_frontier *f)
{
    struct merkle_frontier x;
    merkle_frontier_init(&x);
    char *end;
    if (!s || *s < '0' || *s > '9')
        return -1;
    x.size = strtoull(s, &end, 10);
    if (*end != ':')
        return -1;
    const char *p = end + 1;
    unsigned want = popcount64(x.size);
    for (unsigned i = 0; i < want; i++) {
        char hex[2 * MERKLE_HASH + 1];
        if (strlen(p) < 2 * MERKLE_HASH)
            return -1;
        memcpy(hex, p, 2 * MERKLE_HASH);
        hex[2 * MERKLE_HASH] = 0;
        if (merkle_unhex(hex, x.node[i]))
            return -1;
        p += 2 * MERKLE_HASH;
        if (i + 1 < want) {
            if (*p != ',')
                return -1;
            p++;
        }
    }
    if (*p)
        return -1;
    x.n = want;
    *f = x;
    return 0;
}

/* The largest power of two smaller than n (n >= 2). */
static uint64_t split_point(uint64_t n)
{
    uint64_t k = 1;
    while (k << 1 < n)
        k <<= 1;
    return k;
}

void merkle_range_root(const merkle_hash *leaves, uint64_t lo, uint64_t hi, merkle_hash out)
{
    uint64_t n = hi - lo;
    if (n == 0) {
        merkle_empty(out);
        return;
    }
    if (n == 1) {
        memcpy(out, leaves[lo], MERKLE_HASH);
        return;
    }
    /* Left subtrees are perfect: fold them bottom-up without recursion's depth. */
    uint64_t k = split_point(n);
    merkle_hash l, r;
    merkle_range_root(leaves, lo, lo + k, l);
    merkle_range_root(leaves, lo + k, hi, r);
    merkle_node(l, r, out);
}

/* PATH(m, D[lo:hi]) appended to path. */
static void inclusion_path(const merkle_hash *leaves, uint64_t m, uint64_t lo, uint64_t hi,
                           merkle_hash *path, unsigned *n)
{
    uint64_t size = hi - lo;
    if (size <= 1)
        return;
    uint64_t k = split_point(size);
    if (m < k) {
        inclusion_path(leaves, m, lo, lo + k, path, n);
        merkle_range_root(leaves, lo + k, hi, path[(*n)++]);
    } else {
        inclusion_path(leaves, m - k, lo + k, hi, path, n);
        merkle_range_root(leaves, lo, lo + k, path[(*n)++]);
    }
}

int merkle_inclusion_proof(const merkle_hash *leaves, uint64_t size, uint64_t index,
                           merkle_hash path[MERKLE_MAX_PATH], unsigned *n)
{
    if (index >= size)
        return -1;
    *n = 0;
    inclusion_path(leaves, index, 0, size, path, n);
    return 0;
}

/* SUBPROOF(m, D[lo:hi], b) appended to path. */
static void subproof(const merkle_hash *leaves, uint64_t m, uint64_t lo, uint64_t hi, int b,
                     merkle_hash *path, unsigned *n)
{
    uint64_t size = hi - lo;
    if (m == size) {
        if (!b)
            merkle_range_root(leaves, lo, hi, path[(*n)++]);
        return;
    }
    uint64_t k = split_point(size);
    if (m <= k) {
        subproof(leaves, m, lo, lo + k, b, path, n);
        merkle_range_root(leaves, lo + k, hi, path[(*n)++]);
    } else {
        subproof(leaves, m - k, lo + k, hi, 0, path, n);
        merkle_range_root(leaves, lo, lo + k, path[(*n)++]);
    }
}

int merkle_consistency_proof(const merkle_hash *leaves, uint64_t old_size, uint64_t new_size,
                             merkle_hash path[MERKLE_MAX_PATH], unsigned *n)
{
    if (old_size > new_size)
        return -1;
    *n = 0;
    if (old_size == 0 || old_size == new_size)
        return 0;
    subproof(leaves, old_size, 0, new_size, 1, path, n);
    return 0;
}

int merkle_verify_inclusion(const merkle_hash leaf_hash, uint64_t index, uint64_t size,
                            const merkle_hash *path, unsigned n, const merkle_hash root)
{
    if (index >= size)
        return -1;
    uint64_t fn = index, sn = size - 1;
    merkle_hash r;
    memcpy(r, leaf_hash, MERKLE_HASH);
    for (unsigned i = 0; i < n; i++) {
        if (sn == 0)
            return -1;
        if ((fn & 1) || fn == sn) {
            merkle_node(path[i], r, r);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            merkle_node(r, path[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && sodium_memcmp(r, root, MERKLE_HASH) == 0 ? 0 : -1;
}

int merkle_verify_consistency(uint64_t old_size, uint64_t new_size, const merkle_hash old_root,
                              const merkle_hash new_root, const merkle_hash *path, unsigned n)
{
    if (old_size > new_size)
        return -1;
    if (old_size == new_size)
        return n == 0 && sodium_memcmp(old_root, new_root, MERKLE_HASH) == 0 ? 0 : -1;
    if (old_size == 0)
        return n == 0 ? 0 : -1; /* the empty tree is a prefix of every tree */
    if (n == 0 || n > MERKLE_MAX_PATH)
        return -1;
    merkle_hash p[MERKLE_MAX_PATH + 1];
    unsigned np = 0;
    if ((old_size & (old_size - 1)) == 0) /* a power of two: the old root is on the path */
        memcpy(p[np++], old_root, MERKLE_HASH);
    memcpy(p + np, path, (size_t)n * MERKLE_HASH);
    np += n;
    uint64_t fn = old_size - 1, sn = new_size - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    merkle_hash fr, sr;
    memcpy(fr, p[0], MERKLE_HASH);
    memcpy(sr, p[0], MERKLE_HASH);
    for (unsigned i = 1; i < np; i++) {
        if (sn == 0)
            return -1;
        if ((fn & 1) || fn == sn) {
            merkle_node(p[i], fr, fr);
            merkle_node(p[i], sr, sr);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            merkle_node(sr, p[i], sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && sodium_memcmp(fr, old_root, MERKLE_HASH) == 0 &&
                   sodium_memcmp(sr, new_root, MERKLE_HASH) == 0
               ? 0
               : -1;
}
