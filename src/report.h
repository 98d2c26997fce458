/* report.h: velocity and cost measured from the witness log (docs/REPORT.md): the seed's
 * velocity and cost tables, with measurements where the seed had projections. Pure: feed
 * the entries in log order, read the numbers. Nothing here talks to a server or a file. */
#ifndef S2_REPORT_H
#define S2_REPORT_H

#include <jansson.h>
#include <stdint.h>

struct report;

/* since_ms: only leases, blockers and usage that start at or after it (0: everything);
 * swarm: only that swarm (NULL: all, each on its own and overall). Caller owns. */
struct report *report_new(int64_t since_ms, const char *swarm);
void report_free(struct report *r);

/* A model's tier and prices (USD per million tokens, in micro-dollars), as known before the
 * first entry fed (a report --since skips the model.put entries before it). */
void report_model(struct report *r, const char *name, int tier, int64_t usd_in_micro,
                  int64_t usd_out_micro);

/* One witness entry as GET /v1/witness returns it (params as an object, or as the text of
 * one in the export form); entries must come in seq order. Malformed ones are counted and
 * skipped, never fatal. */
void report_add(struct report *r, json_t *entry);

/* The numbers (caller owns): {"since","until","entries","swarms":[...],"overall":{...}}.
 * Each of swarms[] and overall: tasks, velocity, cost, blockers (docs/REPORT.md). */
json_t *report_json(struct report *r);

/* report_json's numbers as Markdown tables and as a standalone SVG chart (caller frees). */
char *report_markdown(json_t *rep);
char *report_svg(json_t *rep);

#endif
