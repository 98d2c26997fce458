/* test_heap: the indexed heap under the ready queues and timers: order, positions kept
 * exact through push/pop/remove/fix, against a brute-force reference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "util/heap.h"

#define N 2000
static int64_t key[N];
static uint32_t pos[N];

static int less(void *ctx, uint32_t a, uint32_t b)
{
    (void)ctx;
    return key[a] < key[b] || (key[a] == key[b] && a < b);
}
static void setpos(void *ctx, uint32_t item, uint32_t p)
{
    (void)ctx;
    pos[item] = p;
}

static void check_positions(const struct heap *h)
{
    for (size_t i = 0; i < h->n; i++)
        assert_int_equal(pos[h->v[i]], i);
    for (size_t i = 1; i < h->n; i++)
        assert_false(less(NULL, h->v[i], h->v[(i - 1) / 2]));
}

static void test_order(void **state)
{
    (void)state;
    struct heap h;
    heap_init(&h, less, setpos, NULL);
    assert_int_equal(heap_top(&h), HEAP_NONE);
    srand(7);
    for (uint32_t i = 0; i < N; i++) {
        key[i] = rand() % 100;
        heap_push(&h, i);
    }
    check_positions(&h);
    uint32_t prev = heap_pop(&h);
    assert_int_equal(pos[prev], HEAP_NONE);
    for (uint32_t i = 1; i < N; i++) {
        uint32_t x = heap_pop(&h);
        assert_false(less(NULL, x, prev));
        prev = x;
    }
    assert_int_equal(heap_pop(&h), HEAP_NONE);
    heap_release(&h);
}

static void test_remove_and_fix(void **state)
{
    (void)state;
    struct heap h;
    heap_init(&h, less, setpos, NULL);
    static char in[N];
    srand(11);
    for (uint32_t i = 0; i < N; i++) {
        key[i] = rand() % 1000;
        heap_push(&h, i);
        in[i] = 1;
    }
    for (int round = 0; round < 5000; round++) {
        uint32_t x = (uint32_t)(rand() % N);
        if (!in[x])
            continue;
        if (rand() % 2) {
            heap_remove(&h, pos[x]);
            assert_int_equal(pos[x], HEAP_NONE);
            in[x] = 0;
        } else {
            key[x] = rand() % 1000 - 500;
            heap_fix(&h, pos[x]);
        }
        if (round % 500 == 0)
            check_positions(&h);
    }
    check_positions(&h);
    /* the top is the true minimum among what is left */
    uint32_t best = HEAP_NONE;
    for (uint32_t i = 0; i < N; i++)
        if (in[i] && (best == HEAP_NONE || less(NULL, i, best)))
            best = i;
    assert_int_equal(heap_top(&h), best);
    heap_release(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_remove_and_fix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
