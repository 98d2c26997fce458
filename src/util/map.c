/* map.c: open-addressing string map with linear probing and tombstones. */
#include "util/map.h"
#include "util/xalloc.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static const char tomb_marker;
#define MAP_TOMB (&tomb_marker)

static unsigned char hash_key[crypto_shorthash_KEYBYTES];
static int hash_key_ready;

uint64_t map_hash(const char *s, size_t len)
{
    /* Racing first calls would each write random bytes; sodium_init() and the key are set up
     * once at start-up by callers (map_init), before threads exist. */
    if (!hash_key_ready) {
        if (sodium_init() < 0)
            abort();
        randombytes_buf(hash_key, sizeof hash_key);
        hash_key_ready = 1;
    }
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash(out, (const unsigned char *)s, len, hash_key);
    uint64_t h;
    memcpy(&h, out, sizeof h);
    return h;
}

void map_init(struct map *m)
{
    m->slots = NULL;
    m->cap = m->n = m->used = 0;
    map_hash("", 0);
}

void map_release(struct map *m)
{
    free(m->slots);
    map_init(m);
}

static struct map_slot *find(const struct map *m, const char *key, uint64_t h)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct map_slot *s = &m->slots[i];
        if (!s->key)
            return NULL;
        if (s->key != MAP_TOMB && s->hash == h && !strcmp(s->key, key))
            return s;
    }
}

uint32_t map_get(const struct map *m, const char *key)
{
    struct map_slot *s = find(m, key, map_hash(key, strlen(key)));
    return s ? s->val : MAP_NONE;
}

static void rehash(struct map *m, size_t cap)
{
    struct map_slot *old = m->slots;
    size_t oldcap = m->cap;
    m->slots = xcalloc(cap, sizeof *m->slots);
    m->cap = cap;
    m->used = m->n;
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].key || old[i].key == MAP_TOMB)
            continue;
        size_t j = old[i].hash & (cap - 1);
        while (m->slots[j].key)
            j = (j + 1) & (cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

void map_put(struct map *m, const char *key, uint32_t val)
{
    uint64_t h = map_hash(key, strlen(key));
    struct map_slot *s = find(m, key, h);
    if (s) {
        s->val = val;
        s->key = key;
        return;
    }
    /* at most half full: probe sequences stay short even at millions of keys */
    if ((m->used + 1) * 2 >= m->cap)
        rehash(m, m->cap ? (m->n * 4 >= m->cap ? m->cap * 2 : m->cap) : 16);
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    while (m->slots[i].key && m->slots[i].key != MAP_TOMB)
        i = (i + 1) & mask;
    if (!m->slots[i].key)
        m->used++;
    m->slots[i] = (struct map_slot){key, h, val};
    m->n++;
}

void map_reserve(struct map *m, size_t n)
{
    size_t cap = 16;
    while (cap < n * 2 + 2)
        cap *= 2;
    if (cap > m->cap)
        rehash(m, cap);
}

uint32_t map_del(struct map *m, const char *key)
{
    struct map_slot *s = find(m, key, map_hash(key, strlen(key)));
    if (!s)
        return MAP_NONE;
    uint32_t v = s->val;
    s->key = MAP_TOMB;
    m->n--;
    return v;
}
