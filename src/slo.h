/* slo.h: service levels from what leases ended as: a sliding window of the last outcomes of
 * a swarm or an agent, their latency percentiles, success rate and availability, checked
 * against the swarm's contract, and the reputation the governor ranks by. Pure values; the
 * engine records outcomes and persists the window. */
#ifndef S2_SLO_H
#define S2_SLO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define SLO_WINDOW 100

enum slo_result { SLO_DONE = 1, SLO_FAILED = 2, SLO_EXPIRED = 3 };

struct slo_outcome {
    int32_t latency_ms; /* claim to end of the lease */
    uint8_t result;     /* enum slo_result */
};

struct slo_window {
    uint32_t n, head; /* head: where the next outcome goes */
    struct slo_outcome v[SLO_WINDOW];
};

/* What a contract asks (0: not asked). */
struct slo_target {
    double p99_latency_ms, success_rate, availability;
};

struct slo_stats {
    uint32_t samples, done, failed, expired;
    double p50_ms, p99_ms;   /* of successful leases; 0 with none */
    double success_rate;     /* done / all (1 with no samples) */
    double availability;     /* leases ended by the agent (done or fail), not by expiry */
    int p99_met, success_met, availability_met; /* 1 met or not asked, 0 missed */
    double compliance;       /* 1, x0.8 when the success SLO is missed, x0.9 for the p99 */
    double reputation;       /* compliance x success rate; 1.0 with no samples */
};

void slo_record(struct slo_window *w, int32_t latency_ms, int result);
void slo_compute(const struct slo_window *w, const struct slo_target *t, struct slo_stats *s);
/* The target of a contract's "slos" member (JSON text of the contract, or NULL). */
void slo_target_of(const char *contract_json, struct slo_target *t);
json_t *slo_stats_json(const struct slo_stats *s);

/* The window as bytes for storage (5 bytes per outcome, oldest first), and back. */
size_t slo_encode(const struct slo_window *w, uint8_t *out, size_t cap);
void slo_decode(struct slo_window *w, const uint8_t *in, size_t len);

#endif
