/* witness.h: the witness log's entries and checkpoints: the canonical serialisation an entry
 * is hashed over (docs/WITNESS.md, byte for byte), the hash chain and Merkle tree they form,
 * signed checkpoints (Ed25519, libsodium), the JSON Lines export, and the verifier that
 * checks a log from any source. The engine appends through a witness_chain inside the same
 * store transaction as the change; nothing here does I/O. */
#ifndef S2_WITNESS_H
#define S2_WITNESS_H

#include <jansson.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "merkle.h"

struct buf;

#define WITNESS_TRACE_MAX 64

/* One state change. Strings may be NULL (absent) except op and params; params is the
 * exact JSON text that is hashed. The engine fills borrowed pointers; a parsed entry owns
 * its strings (witness_entry_release). */
struct witness_entry {
    uint64_t seq;
    int64_t time; /* ms since the epoch */
    char *actor;  /* who asked: "admin", "swarm:ID", "system" */
    char *swarm;
    int has_phase;
    int64_t phase;
    char *agent;
    char *task;
    char *op;
    char *params;
    char *trace_id;
    merkle_hash prev_hash;
    merkle_hash hash;
};
void witness_entry_release(struct witness_entry *w);

/* A signed tree head: the first tree_size entries have Merkle root root_hash. */
struct checkpoint {
    uint64_t tree_size;
    merkle_hash root_hash;
    int64_t time;
    uint8_t signature[crypto_sign_BYTES];
};

/* The canonical bytes of an entry (everything but its own hash), appended to out. */
void witness_canonical(const struct witness_entry *w, struct buf *out);
/* w->hash = SHA-256(canonical bytes). */
void witness_hash(struct witness_entry *w);
/* The Merkle leaf of an entry: SHA-256(0x00 || w->hash). */
void witness_leaf(const struct witness_entry *w, merkle_hash out);

/* The bytes a checkpoint signature covers, appended to out. */
void checkpoint_message(const struct checkpoint *c, struct buf *out);
void checkpoint_sign(struct checkpoint *c, const uint8_t sk[crypto_sign_SECRETKEYBYTES]);
/* 0 if the signature is valid for pk. */
int checkpoint_verify(const struct checkpoint *c, const uint8_t pk[crypto_sign_PUBLICKEYBYTES]);

/* The head of a growing log: next seq, last hash, Merkle frontier. Plain value. */
struct witness_chain {
    uint64_t seq; /* of the last entry; 0 when empty */
    merkle_hash head;
    struct merkle_frontier tree;
};
void witness_chain_init(struct witness_chain *wc);
/* Number w as the next entry, link it to the head, hash it and add it to the tree. */
void witness_chain_append(struct witness_chain *wc, struct witness_entry *w);
/* A checkpoint of the chain as it stands, signed. */
void witness_chain_checkpoint(const struct witness_chain *wc, int64_t time,
                              const uint8_t sk[crypto_sign_SECRETKEYBYTES], struct checkpoint *c);

/* ---- JSON Lines export (docs/WITNESS.md "Export") ---- */

/* One line each, newline included, appended to out. */
void witness_export_header(struct buf *out, const char *public_key_b64);
void witness_export_entry(struct buf *out, const struct witness_entry *w);
void witness_export_checkpoint(struct buf *out, const struct checkpoint *c);
void witness_export_end(struct buf *out, uint64_t entries, uint64_t checkpoints);
/* An entry as one JSON object for the event stream and the API: the export's fields with
 * params as an object (not hashed text), no newline. extra: more members to append
 * (",\"state\":\"done\"") or NULL. */
void witness_entry_json(struct buf *out, const struct witness_entry *w, const char *extra);
void witness_checkpoint_json(struct buf *out, const struct checkpoint *c);

enum witness_line { WL_HEADER, WL_ENTRY, WL_CHECKPOINT, WL_END };
struct witness_parsed {
    enum witness_line kind;
    struct witness_entry entry;  /* WL_ENTRY (owned) */
    struct checkpoint checkpoint; /* WL_CHECKPOINT */
    char *public_key;            /* WL_HEADER (owned) */
    uint64_t entries, checkpoints; /* WL_END */
};
/* Parse one export line (without its newline). The line must be exactly what the exporter
 * writes for the values it holds, so that no byte can change unnoticed. */
int witness_parse_line(const char *line, size_t len, struct witness_parsed *out,
                       struct s2_error *err);
void witness_parsed_release(struct witness_parsed *p);
/* The fields of an entry from a JSON object in the export's shape (params as a string),
 * without the canonical-bytes check. w is the caller's to release. */
int witness_entry_from_json(json_t *o, struct witness_entry *w, struct s2_error *err);

/* ---- verification ---- */

/* Checks a log fed in order: entries (seq 1, 2, ...) and, after the entries each covers,
 * the checkpoints. Each call fails naming the first thing wrong. */
struct witness_verifier {
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    struct witness_chain chain;
    uint64_t checkpoints;
    uint64_t last_cp_size;
    int64_t last_cp_time;
    uint64_t first_bad; /* seq of the first entry found bad, 0 if none */
};
void witness_verifier_init(struct witness_verifier *v, const uint8_t pk[crypto_sign_PUBLICKEYBYTES]);
int witness_verify_entry(struct witness_verifier *v, const struct witness_entry *w,
                         struct s2_error *err);
int witness_verify_checkpoint(struct witness_verifier *v, const struct checkpoint *c,
                              struct s2_error *err);
/* Every entry must be covered by a signed checkpoint. */
int witness_verify_finish(struct witness_verifier *v, struct s2_error *err);

/* A public key from its base64 text (0 ok). */
int witness_parse_key(const char *b64, uint8_t pk[crypto_sign_PUBLICKEYBYTES]);

/* A fresh W3C-style trace id (32 lowercase hex digits) into out[33]. */
void witness_new_trace_id(char out[33]);
/* The trace id a request carries: S2-Trace-Id (1..64 of [A-Za-z0-9._:-]) or the trace-id
 * of a W3C traceparent header. 0 and out filled, or -1 if neither is usable. */
int witness_trace_from_headers(const char *s2_trace, const char *traceparent,
                               char out[WITNESS_TRACE_MAX + 1]);

#endif
