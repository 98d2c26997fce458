/* witness_db.h: the witness log read from a database (through a store_reader): full
 * verification, the JSON Lines export, and proof bundles. Shared by the offline CLI
 * (`s2 witness ... --db PATH`) and the server's /v1/witness routes; read-only. */
#ifndef S2_WITNESS_DB_H
#define S2_WITNESS_DB_H

#include <jansson.h>
#include <stdio.h>

#include "store.h"
#include "witness.h"

struct witness_report {
    uint64_t entries, checkpoints;
    uint64_t first_bad;    /* 0: none */
    struct checkpoint last; /* the last verified checkpoint */
};

/* Verify every entry, the chain, the tree and every checkpoint signature against pk, in
 * one read snapshot. progress (may be NULL) is called with the entries verified so far
 * every 65536 entries. 0 ok; else err names the first problem and rep->first_bad the
 * first bad entry. */
int witness_db_verify(struct store_reader *rd, const uint8_t pk[crypto_sign_PUBLICKEYBYTES],
                      struct witness_report *rep, void (*progress)(uint64_t entries, void *ctx),
                      void *ctx, struct s2_error *err);

/* Verify an export read from f, every line checked and nothing trusted: the lines must be
 * exactly what the exporter writes, complete to the end line. pk NULL: the key the
 * header names. 0 ok; else err says where (line N) and rep->first_bad which entry. */
int witness_verify_export(FILE *f, const uint8_t *pk, struct witness_report *rep,
                          struct s2_error *err);

/* Write the export (header, entries with checkpoints after the entries they cover, end) of
 * the log up to its latest checkpoint. 0 ok. */
int witness_db_export(struct store_reader *rd, FILE *out, struct s2_error *err);

/* Proof bundles (docs/WITNESS.md "Proofs"), verifiable offline with witness_check_bundle.
 * size 0: the latest checkpoint. Caller owns the result. */
json_t *witness_db_inclusion(struct store_reader *rd, uint64_t seq, uint64_t size,
                             struct s2_error *err);
json_t *witness_db_consistency(struct store_reader *rd, uint64_t old_size, uint64_t new_size,
                               struct s2_error *err);

/* Check a proof bundle against pk: signatures, entry hash, audit path. 0 ok, and *summary
 * (caller frees) says what was proven. */
int witness_check_bundle(json_t *bundle, const uint8_t pk[crypto_sign_PUBLICKEYBYTES],
                         char **summary, struct s2_error *err);

/* The checkpoint of exactly tree size `size` (0: the latest). 1 found, 0 none, <0 error. */
int witness_db_checkpoint(struct store_reader *rd, uint64_t size, struct checkpoint *out,
                          struct s2_error *err);

/* JSON of a checkpoint (the export's members). */
json_t *witness_checkpoint_object(const struct checkpoint *c);
/* Parse a checkpoint object (as witness_checkpoint_object writes it). */
int witness_checkpoint_parse(json_t *o, struct checkpoint *c, struct s2_error *err);

#endif
