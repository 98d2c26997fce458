/* slo.c: the window of outcomes and what it says. Percentiles are nearest-rank over the
 * window's successful leases; every rate is over the window, so an old failure stops
 * counting after SLO_WINDOW newer outcomes. */
#include "slo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void slo_record(struct slo_window *w, int32_t latency_ms, int result)
{
    w->v[w->head] = (struct slo_outcome){latency_ms < 0 ? 0 : latency_ms, (uint8_t)result};
    w->head = (w->head + 1) % SLO_WINDOW;
    if (w->n < SLO_WINDOW)
        w->n++;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static double nearest_rank(const int32_t *sorted, uint32_t n, double pct)
{
    if (!n)
        return 0;
    uint32_t rank = (uint32_t)ceil(pct / 100.0 * n);
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

void slo_compute(const struct slo_window *w, const struct slo_target *t, struct slo_stats *s)
{
    memset(s, 0, sizeof *s);
    int32_t lat[SLO_WINDOW];
    uint32_t nl = 0;
    for (uint32_t i = 0; i < w->n; i++) {
        const struct slo_outcome *o = &w->v[i];
        s->samples++;
        if (o->result == SLO_DONE) {
            s->done++;
            lat[nl++] = o->latency_ms;
        } else if (o->result == SLO_FAILED) {
            s->failed++;
        } else {
            s->expired++;
        }
    }
    qsort(lat, nl, sizeof *lat, cmp_i32);
    s->p50_ms = nearest_rank(lat, nl, 50);
    s->p99_ms = nearest_rank(lat, nl, 99);
    s->success_rate = s->samples ? (double)s->done / s->samples : 1.0;
    s->availability = s->samples ? (double)(s->done + s->failed) / s->samples : 1.0;
    s->p99_met = !(t->p99_latency_ms > 0 && nl && s->p99_ms > t->p99_latency_ms);
    s->success_met = !(t->success_rate > 0 && s->samples && s->success_rate < t->success_rate);
    s->availability_met =
        !(t->availability > 0 && s->samples && s->availability < t->availability);
    s->compliance = 1.0;
    if (!s->success_met)
        s->compliance *= 0.8;
    if (!s->p99_met)
        s->compliance *= 0.9;
    s->reputation = s->samples ? s->compliance * s->success_rate : 1.0;
}

void slo_target_of(const char *contract_json, struct slo_target *t)
{
    memset(t, 0, sizeof *t);
    json_t *c = contract_json ? json_loads(contract_json, 0, NULL) : NULL;
    json_t *s = json_object_get(c, "slos");
    t->p99_latency_ms = json_number_value(json_object_get(s, "p99_latency_ms"));
    t->success_rate = json_number_value(json_object_get(s, "success_rate"));
    t->availability = json_number_value(json_object_get(s, "availability"));
    json_decref(c);
}

json_t *slo_stats_json(const struct slo_stats *s)
{
    return json_pack("{s:i,s:i,s:i,s:i,s:f,s:f,s:f,s:f,s:{s:b,s:b,s:b},s:f,s:f}", "samples",
                     (int)s->samples, "done", (int)s->done, "failed", (int)s->failed, "expired",
                     (int)s->expired, "p50_latency_ms", s->p50_ms, "p99_latency_ms", s->p99_ms,
                     "success_rate", s->success_rate, "availability", s->availability, "met",
                     "p99_latency_ms", s->p99_met, "success_rate", s->success_met, "availability",
                     s->availability_met, "compliance", s->compliance, "reputation",
                     s->reputation);
}

size_t slo_encode(const struct slo_window *w, uint8_t *out, size_t cap)
{
    size_t o = 0;
    uint32_t start = (w->head + SLO_WINDOW - w->n) % SLO_WINDOW;
    for (uint32_t k = 0; k < w->n && o + 5 <= cap; k++) {
        const struct slo_outcome *x = &w->v[(start + k) % SLO_WINDOW];
        uint32_t l = (uint32_t)x->latency_ms;
        out[o++] = (uint8_t)(l >> 24);
        out[o++] = (uint8_t)(l >> 16);
        out[o++] = (uint8_t)(l >> 8);
        out[o++] = (uint8_t)l;
        out[o++] = x->result;
    }
    return o;
}

void slo_decode(struct slo_window *w, const uint8_t *in, size_t len)
{
    memset(w, 0, sizeof *w);
    for (size_t o = 0; o + 5 <= len; o += 5) {
        int32_t l = (int32_t)((uint32_t)in[o] << 24 | (uint32_t)in[o + 1] << 16 |
                              (uint32_t)in[o + 2] << 8 | in[o + 3]);
        if (in[o + 4] >= SLO_DONE && in[o + 4] <= SLO_EXPIRED)
            slo_record(w, l, in[o + 4]);
    }
}
