/* keys.h: the Ed25519 key that signs witness checkpoints (libsodium). The secret key lives
 * in its own file (mode 0600), never in the database, which may be copied or exported. */
#ifndef S2_KEYS_H
#define S2_KEYS_H

#include <sodium.h>

#include "error.h"

/* Create a new key file at path (fails if it exists). *pub receives the public key in
 * base64 (caller frees). */
int keys_create(const char *path, char **pub, struct s2_error *err);
/* Load a key file. */
int keys_load(const char *path, unsigned char sk[crypto_sign_SECRETKEYBYTES],
              unsigned char pk[crypto_sign_PUBLICKEYBYTES], struct s2_error *err);
/* base64 of a public key (caller frees). */
char *keys_pub_b64(const unsigned char pk[crypto_sign_PUBLICKEYBYTES]);

#endif
