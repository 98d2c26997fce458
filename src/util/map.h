/* map.h: a string -> uint32 hash map (open addressing, keyed SipHash so that ids chosen by
 * clients cannot force collisions). Keys are borrowed: the caller keeps each key's storage
 * alive while it is in the map. Not thread-safe. */
#ifndef S2_MAP_H
#define S2_MAP_H

#include <stddef.h>
#include <stdint.h>

#define MAP_NONE UINT32_MAX

struct map_slot {
    const char *key; /* NULL: empty; MAP_TOMB: deleted */
    uint64_t hash;
    uint32_t val;
};

struct map {
    struct map_slot *slots;
    size_t cap;  /* power of two */
    size_t n;    /* live keys */
    size_t used; /* live + tombstones */
};

void map_init(struct map *m);
void map_release(struct map *m);
/* The value for key, or MAP_NONE. */
uint32_t map_get(const struct map *m, const char *key);
/* Insert or overwrite. */
void map_put(struct map *m, const char *key, uint32_t val);
/* Make room for n keys at once (no growth while loading them). */
void map_reserve(struct map *m, size_t n);
/* Remove; returns the old value or MAP_NONE. */
uint32_t map_del(struct map *m, const char *key);
/* Keyed hash of s (SipHash-2-4, process-random key). */
uint64_t map_hash(const char *s, size_t len);

#endif
