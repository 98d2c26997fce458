/* auth.c: token generation, hashing and the registry of known token hashes. */
#include "auth.h"
#include "engine.h"
#include "util/map.h"
#include "util/xalloc.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct token_entry {
    char key[TOKEN_HASH_BYTES * 2 + 1]; /* hex of the hash: the map key */
    uint8_t hash[TOKEN_HASH_BYTES];
    enum principal_kind kind;
    char *swarm, *name;
};

struct auth {
    pthread_rwlock_t lock;
    struct map by_hash;
    struct token_entry **v;
    size_t n, cap;
};

struct auth *auth_new(void)
{
    struct auth *a = xcalloc(1, sizeof *a);
    pthread_rwlock_init(&a->lock, NULL);
    map_init(&a->by_hash);
    return a;
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        free(a->v[i]->swarm);
        free(a->v[i]->name);
        free(a->v[i]);
    }
    free(a->v);
    map_release(&a->by_hash);
    pthread_rwlock_destroy(&a->lock);
    free(a);
}

void auth_hash(const char *token, uint8_t hash[TOKEN_HASH_BYTES])
{
    crypto_hash_sha256(hash, (const unsigned char *)token, strlen(token));
}

char *auth_token_new(const char *prefix, uint8_t hash[TOKEN_HASH_BYTES])
{
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    sodium_bin2base64(b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *tok = xasprintf("%s_%s", prefix, b64);
    auth_hash(tok, hash);
    sodium_memzero(raw, sizeof raw);
    return tok;
}

void auth_add(struct auth *a, const uint8_t hash[TOKEN_HASH_BYTES], const char *kind,
              const char *swarm, const char *name)
{
    struct token_entry *t = xcalloc(1, sizeof *t);
    sodium_bin2hex(t->key, sizeof t->key, hash, TOKEN_HASH_BYTES);
    memcpy(t->hash, hash, TOKEN_HASH_BYTES);
    t->kind = !strcmp(kind, "admin")      ? PRIN_ADMIN
              : !strcmp(kind, "approver") ? PRIN_APPROVER
                                          : PRIN_SWARM;
    t->swarm = swarm ? xstrdup(swarm) : NULL;
    t->name = xstrdup(name ? name : (swarm ? swarm : kind));
    pthread_rwlock_wrlock(&a->lock);
    if (map_get(&a->by_hash, t->key) != MAP_NONE) {
        pthread_rwlock_unlock(&a->lock);
        free(t->swarm);
        free(t->name);
        free(t);
        return;
    }
    a->v = xgrow(a->v, sizeof *a->v, a->n + 1, &a->cap);
    a->v[a->n] = t;
    map_put(&a->by_hash, t->key, (uint32_t)a->n);
    a->n++;
    pthread_rwlock_unlock(&a->lock);
}

int auth_lookup(struct auth *a, const char *token, struct principal *who)
{
    uint8_t hash[TOKEN_HASH_BYTES];
    char key[TOKEN_HASH_BYTES * 2 + 1];
    auth_hash(token, hash);
    sodium_bin2hex(key, sizeof key, hash, TOKEN_HASH_BYTES);
    int rc = -1;
    pthread_rwlock_rdlock(&a->lock);
    uint32_t i = map_get(&a->by_hash, key);
    /* The map finds the entry by a keyed hash of the hash; the final comparison of the
     * stored hash is constant-time so no timing reveals how much of it matched. */
    if (i != MAP_NONE && sodium_memcmp(a->v[i]->hash, hash, TOKEN_HASH_BYTES) == 0) {
        who->kind = a->v[i]->kind;
        who->swarm = a->v[i]->swarm;
        who->name = a->v[i]->name;
        rc = 0;
    }
    pthread_rwlock_unlock(&a->lock);
    return rc;
}
