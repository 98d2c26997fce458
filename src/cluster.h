/* cluster.h: a node of a multi-node deployment on PostgreSQL (docs/OPERATIONS-PG.md). Every
 * node serves HTTP; exactly one, the leader (chosen with a PostgreSQL advisory lock), runs
 * the engine; the others forward each request to it. Takeover when the leader's session
 * ends: another node loads the state and serves within a second or two. */
#ifndef S2_CLUSTER_H
#define S2_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "error.h"

struct http_server;
struct cluster;

struct cluster_config {
    const char *location; /* postgres://... */
    const char *key_path; /* the signing key every node shares */
    enum durability durability;
    const char *listen;    /* HOST:PORT */
    size_t max_body;
    const char *advertise; /* the URL other nodes reach this one at; NULL: from listen */
    const char *node_id;   /* NULL: HOST:PORT */
    /* A leader whose session has been silent this long is deposed by the others (0: never;
     * then only the end of its session, e.g. its process exiting, frees the lead). */
    int64_t leader_timeout_ms;
};

/* Listen, and start following (and competing for the lead). *srv: the node's HTTP server
 * (owned by the cluster). Caller owns the result (cluster_stop). */
int cluster_start(struct cluster **out, struct http_server **srv, const struct cluster_config *cfg,
                  struct s2_error *err);
int cluster_port(const struct cluster *c);
/* Why the node stopped by itself (it cannot serve this database: a tampered log, another
 * key...), or NULL (caller frees). It raises SIGTERM in the process when that happens. */
char *cluster_fatal(struct cluster *c);
/* Stop competing, stop serving (a leader's last batch commits), release the lock, free. */
void cluster_stop(struct cluster *c);

#endif
