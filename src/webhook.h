/* webhook.h: escalations POSTed to a human's endpoint (policy.webhook_url), from a thread of
 * their own with a timeout and retries, so a slow or dead receiver never holds up the
 * engine. Jobs are queued in order; what cannot be delivered is logged. */
#ifndef S2_WEBHOOK_H
#define S2_WEBHOOK_H

#include <stdint.h>

struct webhook;

struct webhook *webhook_new(void);
/* Queue one POST of json (copied) to url; returns at once. */
void webhook_post(struct webhook *w, const char *url, int64_t timeout_ms, int retries,
                  const char *json);
/* Deliveries done and failed so far (thread-safe). */
void webhook_counts(struct webhook *w, uint64_t *sent, uint64_t *failed, uint64_t *queued);
/* Try what is queued for up to grace_ms more, then stop the thread and free. */
void webhook_free(struct webhook *w, int64_t grace_ms);

#endif
