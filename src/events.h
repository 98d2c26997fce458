/* events.h: the live stream of committed state changes. The engine publishes each batch's
 * events after its commit; SSE connections subscribe and read them as text/event-stream
 * frames. A ring keeps the most recent events so a reconnecting client resumes from its
 * Last-Event-ID; one that fell further behind is told the range it missed. Thread-safe. */
#ifndef S2_EVENTS_H
#define S2_EVENTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct buf;

struct event {
    uint64_t seq;
    char *swarm; /* NULL: not tied to one swarm (visible to admin subscribers only) */
    char *data;  /* one JSON object, no newline */
    size_t len;
    int notify;  /* also for the escalation webhook */
};

struct events;
struct event_sub;

struct events *events_new(size_t ring);
void events_free(struct events *ev);
/* Publish n events in seq order; the hub takes ownership of their strings. */
void events_publish(struct events *ev, struct event *v, size_t n);
uint64_t events_last_seq(struct events *ev);
/* The next seq the engine will use is seq+1 (set once at start). */
void events_set_last_seq(struct events *ev, uint64_t seq);

/* "after" for a subscriber that wants only what is published from now on. */
#define EVENTS_LIVE UINT64_MAX

/* Events older than the ring are read through fn: it appends SSE frames for events
 * from..to (inclusive; as many as it likes, in order) to out and returns the last seq it
 * covered, or -1 on failure. Called from a reading thread, without the hub's lock. */
typedef int64_t events_backfill_fn(void *ctx, uint64_t from, uint64_t to, const char *swarm,
                                   struct buf *out);
void events_set_backfill(struct events *ev, events_backfill_fn *fn, void *ctx);

/* Subscribe to events with seq > after, read from the store through the backfill when
 * older than the ring (0: what the ring holds, no backfill; EVENTS_LIVE: only
 * new ones from now). swarm: only that swarm's
 * events (NULL: all). wake(arg) is called, under the hub's lock, for an armed subscriber
 * when something arrives or on events_kick. */
struct event_sub *events_subscribe(struct events *ev, uint64_t after, const char *swarm,
                                   void (*wake)(void *arg), void *arg);
void events_unsubscribe(struct events *ev, struct event_sub *s);
/* Copy whole or partial SSE frames into buf. >0: bytes written. 0: nothing to send; the
 * subscriber is armed and arm(arg) was called under the lock (the caller suspends there, so
 * that a wake cannot come before the suspend). */
ssize_t events_read(struct events *ev, struct event_sub *s, char *buf, size_t max,
                    void (*arm)(void *arg), void *arg);
/* Wake every armed subscriber (keep-alives, shutdown). */
void events_kick(struct events *ev);
/* After this, events_read returns -1 (end of stream) once the backlog is sent. */
void events_close(struct events *ev);

#endif
