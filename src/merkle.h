/* merkle.h: the RFC 6962 (RFC 9162 section 2.1) Merkle tree over witness entries: leaf and
 * node hashes, the running root of an append-only log (a compact "frontier" of perfect
 * subtrees), tree hashes over a range of leaves, and audit paths: inclusion and consistency
 * proofs with their verification. Pure functions over SHA-256 (libsodium); no I/O. */
#ifndef S2_MERKLE_H
#define S2_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#define MERKLE_HASH 32
#define MERKLE_MAX_PATH 64 /* a tree of 2^64 leaves needs at most 64 hashes per proof */

typedef uint8_t merkle_hash[MERKLE_HASH];

/* SHA-256(0x00 || data): the hash of a leaf. */
void merkle_leaf(const void *data, size_t len, merkle_hash out);
/* SHA-256(0x01 || left || right): the hash of an interior node. */
void merkle_node(const merkle_hash left, const merkle_hash right, merkle_hash out);
/* SHA-256 of the empty string: the root of the empty tree. */
void merkle_empty(merkle_hash out);

/* The right edge of a growing tree: one perfect subtree root per bit set in size, largest
 * first. Appending and taking the root are O(log size). Plain value; copy it freely. */
struct merkle_frontier {
    uint64_t size;
    unsigned n;
    merkle_hash node[MERKLE_MAX_PATH];
};
void merkle_frontier_init(struct merkle_frontier *f);
void merkle_frontier_add(struct merkle_frontier *f, const merkle_hash leaf_hash);
/* The tree hash of the first f->size leaves. */
void merkle_frontier_root(const struct merkle_frontier *f, merkle_hash out);
/* Text form for storage: "<size>:<hex of each node>" (caller frees), and back (0 ok). */
char *merkle_frontier_format(const struct merkle_frontier *f);
int merkle_frontier_parse(const char *s, struct merkle_frontier *f);

/* The tree hash MTH(D[lo:hi]) over leaf hashes. */
void merkle_range_root(const merkle_hash *leaves, uint64_t lo, uint64_t hi, merkle_hash out);

/* The audit path of leaf `index` in the tree of the first `size` leaves (bottom-up, as
 * RFC 6962 PATH). *n receives its length. -1 when index >= size. */
int merkle_inclusion_proof(const merkle_hash *leaves, uint64_t size, uint64_t index,
                           merkle_hash path[MERKLE_MAX_PATH], unsigned *n);
/* The consistency proof between the trees of the first old and new leaves (RFC 6962
 * PROOF(m, D[n])). -1 when old > new. */
int merkle_consistency_proof(const merkle_hash *leaves, uint64_t old_size, uint64_t new_size,
                             merkle_hash path[MERKLE_MAX_PATH], unsigned *n);

/* Verification, as RFC 9162 2.1.3.2 and 2.1.4.2: 0 when the proof holds, -1 otherwise. */
int merkle_verify_inclusion(const merkle_hash leaf_hash, uint64_t index, uint64_t size,
                            const merkle_hash *path, unsigned n, const merkle_hash root);
int merkle_verify_consistency(uint64_t old_size, uint64_t new_size, const merkle_hash old_root,
                              const merkle_hash new_root, const merkle_hash *path, unsigned n);

/* Lowercase hex of a hash into out (65 bytes), and back: 0 only for exactly 64 lowercase
 * hex digits (a verifier must not accept two spellings of one hash). */
void merkle_hex(const merkle_hash h, char out[2 * MERKLE_HASH + 1]);
int merkle_unhex(const char *s, merkle_hash out);

#endif
