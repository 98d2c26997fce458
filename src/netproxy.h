/* netproxy.h: the allowlisting HTTP proxy a worker runs for one task. The sandbox has an
 * empty network namespace; its PID 1 listens on 127.0.0.1:3128 inside and hands every
 * accepted connection to the worker (SCM_RIGHTS), which serves it here, in the host's
 * network namespace: CONNECT host:port (tunnels, HTTPS) and absolute-form requests
 * (http://host:port/...) to the granted endpoints only; everything else gets a 403 that
 * names what was refused. Never connects anywhere the grants do not name, and never to a
 * loopback or link-local address unless a grant names that address literally. */
#ifndef S2_NETPROXY_H
#define S2_NETPROXY_H

#include <stddef.h>

#include "error.h"

/* One granted endpoint: "api.example.com:443", "*.example.com:443" (any subdomain),
 * "10.0.0.5:8080", "[::1]:7411". */
struct netproxy_grant {
    char *host; /* lowercase; without brackets; for a wildcard, without "*." */
    int port;
    int wildcard;
    int literal; /* host is an IP address */
};

/* Parse "host:port" into g (caller releases with netproxy_grant_release). */
int netproxy_grant_parse(const char *spec, struct netproxy_grant *g, struct s2_error *err);
void netproxy_grant_release(struct netproxy_grant *g);

struct netproxy_request {
    int connect; /* 1: CONNECT (a tunnel); 0: an absolute-form request to forward */
    char method[32];
    char host[256]; /* lowercase, without brackets */
    int port;
    size_t head_len; /* bytes of the request head, through the blank line */
    char *forward;   /* absolute-form: the head to send upstream (caller frees) */
};

/* Parse the head of a proxy request in buf[0..len) (it must hold the whole head, through
 * "\r\n\r\n"). Returns 0, or <0 with err naming what is wrong. */
int netproxy_parse_request(const char *buf, size_t len, struct netproxy_request *rq,
                           struct s2_error *err);

struct netproxy;

/* A proxy for one task; label names it in logs (the task id). Thread-safe. */
struct netproxy *netproxy_new(const char *label);
/* Grant an endpoint ("host:port"); <0 with err when malformed. */
int netproxy_allow(struct netproxy *np, const char *spec, struct s2_error *err);
/* Is host:port granted? */
int netproxy_allowed(struct netproxy *np, const char *host, int port);
/* Serve one connection from the sandbox (takes ownership of fd) on its own thread. */
void netproxy_handle(struct netproxy *np, int fd);
/* Connections served, refused (for reports). */
void netproxy_counts(struct netproxy *np, unsigned *served, unsigned *refused);
/* Close every connection and wait for their threads; then free. */
void netproxy_free(struct netproxy *np);

#endif
