/* auth.h: bearer tokens. Tokens are random (libsodium), shown once, stored only as their
 * SHA-256; lookups hash the presented token and compare in constant time. The registry is
 * thread-safe: HTTP threads read it, the engine adds to it after a commit. */
#ifndef S2_AUTH_H
#define S2_AUTH_H

#include <stdint.h>

#include "store.h"

struct auth;
struct principal;

struct auth *auth_new(void);
void auth_free(struct auth *a);

/* A new random token "<prefix>_<43 chars base64url>" (caller frees) and its hash. */
char *auth_token_new(const char *prefix, uint8_t hash[TOKEN_HASH_BYTES]);
void auth_hash(const char *token, uint8_t hash[TOKEN_HASH_BYTES]);

/* Register a token hash. kind: "admin" | "swarm". Duplicates are ignored. */
void auth_add(struct auth *a, const uint8_t hash[TOKEN_HASH_BYTES], const char *kind,
              const char *swarm, const char *name);
/* 0 and *who filled if the token is known, else -1. who's strings live as long as a. */
int auth_lookup(struct auth *a, const char *token, struct principal *who);

#endif
