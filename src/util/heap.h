/* heap.h: an indexed binary min-heap of uint32 items (indexes into a caller's table).
 * The caller supplies the order and is told each item's position, so any item can be
 * removed or re-keyed in O(log n). Not thread-safe; the engine thread owns its heaps. */
#ifndef S2_HEAP_H
#define S2_HEAP_H

#include <stddef.h>
#include <stdint.h>

#define HEAP_NONE UINT32_MAX

/* true if a must come out before b */
typedef int heap_less_fn(void *ctx, uint32_t a, uint32_t b);
/* record that item now sits at pos (HEAP_NONE when it leaves the heap) */
typedef void heap_setpos_fn(void *ctx, uint32_t item, uint32_t pos);

struct heap {
    uint32_t *v;
    size_t n, cap;
    heap_less_fn *less;
    heap_setpos_fn *setpos;
    void *ctx;
};

void heap_init(struct heap *h, heap_less_fn *less, heap_setpos_fn *setpos, void *ctx);
void heap_release(struct heap *h);
void heap_push(struct heap *h, uint32_t item);
/* The first item, or HEAP_NONE if empty. */
uint32_t heap_top(const struct heap *h);
uint32_t heap_pop(struct heap *h);
/* Remove the item at pos (as reported through setpos). */
void heap_remove(struct heap *h, uint32_t pos);
/* Restore order after the key of the item at pos changed either way. */
void heap_fix(struct heap *h, uint32_t pos);

#endif
