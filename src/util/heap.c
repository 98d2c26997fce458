/* heap.c: indexed binary heap. */
#include "util/heap.h"
#include "util/xalloc.h"

#include <stdlib.h>

void heap_init(struct heap *h, heap_less_fn *less, heap_setpos_fn *setpos, void *ctx)
{
    h->v = NULL;
    h->n = h->cap = 0;
    h->less = less;
    h->setpos = setpos;
    h->ctx = ctx;
}

void heap_release(struct heap *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

static void place(struct heap *h, size_t pos, uint32_t item)
{
    h->v[pos] = item;
    h->setpos(h->ctx, item, (uint32_t)pos);
}

static void sift_up(struct heap *h, size_t pos)
{
    uint32_t item = h->v[pos];
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (!h->less(h->ctx, item, h->v[parent]))
            break;
        place(h, pos, h->v[parent]);
        pos = parent;
    }
    place(h, pos, item);
}

static void sift_down(struct heap *h, size_t pos)
{
    uint32_t item = h->v[pos];
    for (;;) {
        size_t l = 2 * pos + 1, best = pos;
        uint32_t bi = item;
        if (l < h->n && h->less(h->ctx, h->v[l], bi))
            best = l, bi = h->v[l];
        if (l + 1 < h->n && h->less(h->ctx, h->v[l + 1], bi))
            best = l + 1, bi = h->v[l + 1];
        if (best == pos)
            break;
        place(h, pos, bi);
        pos = best;
    }
    place(h, pos, item);
}

void heap_push(struct heap *h, uint32_t item)
{
    h->v = xgrow(h->v, sizeof *h->v, h->n + 1, &h->cap);
    h->v[h->n++] = item;
    sift_up(h, h->n - 1);
}

uint32_t heap_top(const struct heap *h)
{
    return h->n ? h->v[0] : HEAP_NONE;
}

void heap_remove(struct heap *h, uint32_t pos)
{
    uint32_t item = h->v[pos];
    h->n--;
    if (pos < h->n) {
        h->v[pos] = h->v[h->n];
        heap_fix(h, pos);
    }
    h->setpos(h->ctx, item, HEAP_NONE);
}

uint32_t heap_pop(struct heap *h)
{
    if (!h->n)
        return HEAP_NONE;
    uint32_t top = h->v[0];
    heap_remove(h, 0);
    return top;
}

void heap_fix(struct heap *h, uint32_t pos)
{
    if (pos > 0 && h->less(h->ctx, h->v[pos], h->v[(pos - 1) / 2]))
        sift_up(h, pos);
    else
        sift_down(h, pos);
}
