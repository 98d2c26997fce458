/* events.c: ring of recent events and the subscribers reading them. */
#include "events.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/xalloc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEEPALIVE_NS (15LL * 1000000000)

struct event_sub {
    uint64_t next;   /* next seq to send */
    char *swarm;
    void (*wake)(void *arg);
    void *arg;
    int armed;
    struct buf frame; /* the frame being sent */
    size_t frame_off;
    int64_t last_write_ns;
    struct event_sub *prev, *nx;
};

struct events {
    pthread_mutex_t mu;
    struct event *ring;
    size_t cap;
    uint64_t last;  /* seq of the newest event */
    uint64_t first; /* seq of the oldest event still in the ring */
    struct event_sub *subs;
    int closed;
    events_backfill_fn *backfill;
    void *backfill_ctx;
};

struct events *events_new(size_t ring)
{
    struct events *ev = xcalloc(1, sizeof *ev);
    pthread_mutex_init(&ev->mu, NULL);
    ev->cap = ring ? ring : 1;
    ev->ring = xcalloc(ev->cap, sizeof *ev->ring);
    ev->first = 1;
    return ev;
}

void events_free(struct events *ev)
{
    if (!ev)
        return;
    for (size_t i = 0; i < ev->cap; i++) {
        free(ev->ring[i].swarm);
        free(ev->ring[i].data);
    }
    while (ev->subs)
        events_unsubscribe(ev, ev->subs);
    free(ev->ring);
    pthread_mutex_destroy(&ev->mu);
    free(ev);
}

static void wake_all(struct events *ev)
{
    for (struct event_sub *s = ev->subs; s; s = s->nx)
        if (s->armed) {
            s->armed = 0;
            s->wake(s->arg);
        }
}

void events_publish(struct events *ev, struct event *v, size_t n)
{
    pthread_mutex_lock(&ev->mu);
    for (size_t i = 0; i < n; i++) {
        struct event *slot = &ev->ring[v[i].seq % ev->cap];
        free(slot->swarm);
        free(slot->data);
        *slot = v[i];
        ev->last = v[i].seq;
        if (ev->last >= ev->cap && ev->first < ev->last - ev->cap + 1)
            ev->first = ev->last - ev->cap + 1;
    }
    if (n)
        wake_all(ev);
    pthread_mutex_unlock(&ev->mu);
}

uint64_t events_last_seq(struct events *ev)
{
    pthread_mutex_lock(&ev->mu);
    uint64_t s = ev->last;
    pthread_mutex_unlock(&ev->mu);
    return s;
}

void events_set_backfill(struct events *ev, events_backfill_fn *fn, void *ctx)
{
    pthread_mutex_lock(&ev->mu);
    ev->backfill = fn;
    ev->backfill_ctx = ctx;
    pthread_mutex_unlock(&ev->mu);
}

void events_set_last_seq(struct events *ev, uint64_t seq)
{
    pthread_mutex_lock(&ev->mu);
    ev->last = seq;
    ev->first = seq + 1;
    pthread_mutex_unlock(&ev->mu);
}

struct event_sub *events_subscribe(struct events *ev, uint64_t after, const char *swarm,
                                   void (*wake)(void *arg), void *arg)
{
    struct event_sub *s = xcalloc(1, sizeof *s);
    s->swarm = swarm ? xstrdup(swarm) : NULL;
    s->wake = wake;
    s->arg = arg;
    buf_init(&s->frame, 0);
    s->last_write_ns = clock_mono_ns();
    pthread_mutex_lock(&ev->mu);
    /* 0: what the ring holds (the whole log is GET /v1/witness); N: after N, backfilled */
    s->next = after == EVENTS_LIVE ? ev->last + 1 : after == 0 ? ev->first : after + 1;
    if (s->next > ev->last + 1) /* an id from a future (or an older server's) stream */
        s->next = ev->last + 1;
    s->nx = ev->subs;
    if (ev->subs)
        ev->subs->prev = s;
    ev->subs = s;
    pthread_mutex_unlock(&ev->mu);
    return s;
}

void events_unsubscribe(struct events *ev, struct event_sub *s)
{
    pthread_mutex_lock(&ev->mu);
    if (s->prev)
        s->prev->nx = s->nx;
    else
        ev->subs = s->nx;
    if (s->nx)
        s->nx->prev = s->prev;
    pthread_mutex_unlock(&ev->mu);
    buf_release(&s->frame);
    free(s->swarm);
    free(s);
}

/* Fill s->frame with the next frame to send; 0 if there is none. Lock held. */
static int next_frame(struct events *ev, struct event_sub *s)
{
    if (s->next < ev->first) {
        buf_addf(&s->frame, "event: gap\ndata: {\"from\":%llu,\"to\":%llu}\n\n",
                 (unsigned long long)s->next, (unsigned long long)ev->first - 1);
        s->next = ev->first;
        return 1;
    }
    while (s->next <= ev->last) {
        struct event *e = &ev->ring[s->next % ev->cap];
        uint64_t seq = s->next++;
        if (s->swarm && (!e->swarm || strcmp(e->swarm, s->swarm)))
            continue;
        buf_addf(&s->frame, "id: %llu\ndata: ", (unsigned long long)seq);
        buf_add(&s->frame, e->data, e->len);
        buf_add(&s->frame, "\n\n", 2);
        return 1;
    }
    return 0;
}

ssize_t events_read(struct events *ev, struct event_sub *s, char *out, size_t max,
                    void (*arm)(void *arg), void *arg)
{
    size_t n = 0;
    pthread_mutex_lock(&ev->mu);
    while (n < max) {
        if (s->frame_off == s->frame.len) {
            buf_reset(&s->frame);
            s->frame_off = 0;
            /* Older than the ring: read it from the store, outside the lock (only this
             * reader touches s->frame). A failed read falls back to a gap event. */
            if (s->next < ev->first && ev->backfill) {
                uint64_t from = s->next, to = ev->first - 1;
                events_backfill_fn *fn = ev->backfill;
                void *ctx = ev->backfill_ctx;
                pthread_mutex_unlock(&ev->mu);
                int64_t got = fn(ctx, from, to, s->swarm, &s->frame);
                pthread_mutex_lock(&ev->mu);
                if (got >= 0) {
                    s->next = (uint64_t)got + 1;
                    if (s->frame.len)
                        goto have_frame;
                    continue;
                }
                buf_reset(&s->frame);
            }
            if (!next_frame(ev, s))
                break;
        }
    have_frame:;
        size_t k = s->frame.len - s->frame_off;
        if (k > max - n)
            k = max - n;
        memcpy(out + n, s->frame.ptr + s->frame_off, k);
        s->frame_off += k;
        n += k;
    }
    int64_t now = clock_mono_ns();
    if (!n && ev->closed) {
        pthread_mutex_unlock(&ev->mu);
        return -1;
    }
    if (!n && now - s->last_write_ns >= KEEPALIVE_NS && max >= 13) {
        memcpy(out, ": keepalive\n\n", 13);
        n = 13;
    }
    if (n) {
        s->last_write_ns = now;
    } else {
        s->armed = 1;
        arm(arg);
    }
    pthread_mutex_unlock(&ev->mu);
    return (ssize_t)n;
}

void events_kick(struct events *ev)
{
    pthread_mutex_lock(&ev->mu);
    wake_all(ev);
    pthread_mutex_unlock(&ev->mu);
}

void events_close(struct events *ev)
{
    pthread_mutex_lock(&ev->mu);
    ev->closed = 1;
    wake_all(ev);
    pthread_mutex_unlock(&ev->mu);
}
