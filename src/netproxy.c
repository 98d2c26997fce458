/* netproxy.c: per-task allowlisting proxy (CONNECT and absolute-form HTTP), one thread per
 * connection. Never forwards a byte before the destination was checked against the
 * grants, and never resolves a grant to a loopback or link-local address it did not name. */
#include "netproxy.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEAD_MAX (16 * 1024)
#define CONN_MAX 64
#define IO_TIMEOUT_MS 15000

static int is_ip_literal(const char *h)
{
    unsigned char b[16];
    return inet_pton(AF_INET, h, b) == 1 || inet_pton(AF_INET6, h, b) == 1;
}

/* host[:port] syntax shared by grants and requests: brackets for IPv6. */
static int split_hostport(const char *s, size_t n, char *host, size_t hostlen, int *port,
                          int need_port)
{
    const char *colon;
    size_t hl;
    if (n && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb)
            return -1;
        hl = (size_t)(rb - s - 1);
        if (hl == 0 || hl >= hostlen)
            return -1;
        memcpy(host, s + 1, hl);
        host[hl] = 0;
        colon = rb + 1 < s + n && rb[1] == ':' ? rb + 1 : NULL;
        if (!colon && rb + 1 != s + n)
            return -1;
    } else {
        colon = NULL;
        for (size_t i = n; i > 0; i--)
            if (s[i - 1] == ':') {
                colon = s + i - 1;
                break;
            }
        hl = colon ? (size_t)(colon - s) : n;
        if (hl == 0 || hl >= hostlen || memchr(s, ':', hl))
            return -1;
        memcpy(host, s, hl);
        host[hl] = 0;
    }
    for (char *h = host; *h; h++) {
        unsigned char c = (unsigned char)*h;
        if (!(isalnum(c) || c == '.' || c == '-' || c == '_' || c == ':' || c == '*'))
            return -1;
        *h = (char)tolower(c);
    }
    if (!colon) {
        if (need_port)
            return -1;
        *port = 0;
        return 0;
    }
    const char *p = colon + 1, *end = s + n;
    if (p == end || end - p > 5)
        return -1;
    long v = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

int netproxy_grant_parse(const char *spec, struct netproxy_grant *g, struct s2_error *err)
{
    char host[256];
    int port;
    memset(g, 0, sizeof *g);
    if (split_hostport(spec, strlen(spec), host, sizeof host, &port, 1))
        return s2_fail(err, S2_EINVAL, "invalid_field",
                       "network grant '%s' is not host:port (e.g. api.example.com:443)", spec);
    const char *h = host;
    if (!strncmp(h, "*.", 2)) {
        g->wildcard = 1;
        h += 2;
    }
    if (!*h || strchr(h, '*'))
        return s2_fail(err, S2_EINVAL, "invalid_field",
                       "network grant '%s': a wildcard may only be a leading '*.'", spec);
    g->host = xstrdup(h);
    g->port = port;
    g->literal = is_ip_literal(h);
    return 0;
}

void netproxy_grant_release(struct netproxy_grant *g)
{
    free(g->host);
    memset(g, 0, sizeof *g);
}

static const char *find_head_end(const char *buf, size_t len)
{
    for (size_t i = 3; i < len; i++)
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
            return buf + i + 1;
    return NULL;
}

int netproxy_parse_request(const char *buf, size_t len, struct netproxy_request *rq,
                           struct s2_error *err)
{
    memset(rq, 0, sizeof *rq);
    const char *end = find_head_end(buf, len);
    if (!end)
        return s2_fail(err, S2_EINVAL, "bad_request", "incomplete request head");
    rq->head_len = (size_t)(end - buf);
    const char *eol = memchr(buf, '\r', rq->head_len);
    const char *sp1 = memchr(buf, ' ', (size_t)(eol - buf));
    if (!sp1 || sp1 == buf || (size_t)(sp1 - buf) >= sizeof rq->method)
        return s2_fail(err, S2_EINVAL, "bad_request", "malformed request line");
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(eol - target));
    if (!sp2 || sp2 == target)
        return s2_fail(err, S2_EINVAL, "bad_request", "malformed request line");
    const char *version = sp2 + 1;
    size_t vlen = (size_t)(eol - version);
    if (vlen != 8 || strncmp(version, "HTTP/1.", 7))
        return s2_fail(err, S2_EINVAL, "bad_request", "not an HTTP/1.x request");
    memcpy(rq->method, buf, (size_t)(sp1 - buf));
    rq->method[sp1 - buf] = 0;
    for (char *m = rq->method; *m; m++)
        if (!isupper((unsigned char)*m))
            return s2_fail(err, S2_EINVAL, "bad_request", "malformed method");
    size_t tlen = (size_t)(sp2 - target);
    if (!strcmp(rq->method, "CONNECT")) {
        rq->connect = 1;
        if (split_hostport(target, tlen, rq->host, sizeof rq->host, &rq->port, 1) ||
            strchr(rq->host, '*'))
            return s2_fail(err, S2_EINVAL, "bad_request", "CONNECT needs host:port");
        return 0;
    }
    if (tlen < 8 || strncasecmp(target, "http://", 7))
        return s2_fail(err, S2_EINVAL, "bad_request",
                       "only CONNECT and http:// absolute-form requests go through this proxy");
    const char *auth = target + 7, *tend = target + tlen;
    const char *slash = memchr(auth, '/', (size_t)(tend - auth));
    const char *q = memchr(auth, '?', (size_t)(tend - auth));
    if (q && (!slash || q < slash))
        slash = q;
    const char *aend = slash ? slash : tend;
    if (memchr(auth, '@', (size_t)(aend - auth)))
        return s2_fail(err, S2_EINVAL, "bad_request", "credentials in the URL are not supported");
    if (split_hostport(auth, (size_t)(aend - auth), rq->host, sizeof rq->host, &rq->port, 0) ||
        strchr(rq->host, '*'))
        return s2_fail(err, S2_EINVAL, "bad_request", "malformed URL host");
    if (!rq->port)
        rq->port = 80;
    /* the head to forward: origin-form request line, hop-by-hop and proxy headers dropped,
     * one request per connection (a reused connection could name another host) */
    struct buf b = BUF_INIT;
    buf_init(&b, HEAD_MAX * 2);
    buf_addf(&b, "%s %s%.*s %.*s\r\n", rq->method, slash && *slash == '?' ? "/" : "",
             slash ? (int)(tend - slash) : 1, slash ? slash : "/", (int)vlen, version);
    for (const char *l = eol + 2; l < end - 2;) {
        const char *le = memchr(l, '\r', (size_t)(end - l));
        if (!le)
            break;
        size_t ll = (size_t)(le - l);
        static const char *const drop[] = {
            "proxy-connection:", "proxy-authorization:", "connection:", "keep-alive:"};
        int skip = 0;
        for (int i = 0; i < 4; i++)
            if (ll >= strlen(drop[i]) && !strncasecmp(l, drop[i], strlen(drop[i])))
                skip = 1;
        if (!skip) {
            buf_add(&b, l, ll);
            buf_adds(&b, "\r\n");
        }
        l = le + 2;
    }
    buf_adds(&b, "Connection: close\r\n\r\n");
    rq->forward = buf_detach(&b, NULL);
    return 0;
}

/* ---- the proxy ---- */

struct conn {
    struct netproxy *np;
    int cfd, ufd;
    pthread_t th;
    int finished;
    struct conn *next;
};

struct netproxy {
    char *label;
    struct netproxy_grant *g;
    size_t ng, gcap;
    pthread_mutex_t mu;
    struct conn *conns;
    unsigned live, served, refused;
    int stopping;
};

struct netproxy *netproxy_new(const char *label)
{
    struct netproxy *np = xcalloc(1, sizeof *np);
    np->label = xstrdup(label ? label : "");
    pthread_mutex_init(&np->mu, NULL);
    return np;
}

int netproxy_allow(struct netproxy *np, const char *spec, struct s2_error *err)
{
    struct netproxy_grant g;
    if (netproxy_grant_parse(spec, &g, err))
        return S2_EINVAL;
    pthread_mutex_lock(&np->mu);
    np->g = xgrow(np->g, sizeof *np->g, np->ng + 1, &np->gcap);
    np->g[np->ng++] = g;
    pthread_mutex_unlock(&np->mu);
    return 0;
}

/* The grant that lets host:port through, or NULL. */
static const struct netproxy_grant *grant_for(struct netproxy *np, const char *host, int port)
{
    for (size_t i = 0; i < np->ng; i++) {
        const struct netproxy_grant *g = &np->g[i];
        if (g->port != port)
            continue;
        if (!g->wildcard && !strcmp(g->host, host))
            return g;
        if (g->wildcard) {
            size_t hl = strlen(host), gl = strlen(g->host);
            if (hl > gl + 1 && host[hl - gl - 1] == '.' && !strcmp(host + hl - gl, g->host))
                return g;
        }
    }
    return NULL;
}

int netproxy_allowed(struct netproxy *np, const char *host, int port)
{
    pthread_mutex_lock(&np->mu);
    int ok = grant_for(np, host, port) != NULL;
    pthread_mutex_unlock(&np->mu);
    return ok;
}

void netproxy_counts(struct netproxy *np, unsigned *served, unsigned *refused)
{
    pthread_mutex_lock(&np->mu);
    *served = np->served;
    *refused = np->refused;
    pthread_mutex_unlock(&np->mu);
}

static int internal_addr(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return (a >> 24) == 127 || (a >> 16) == 0xa9fe || a == 0 || (a >> 28) == 0xe;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_LINKLOCAL(a) || IN6_IS_ADDR_UNSPECIFIED(a) ||
            IN6_IS_ADDR_MULTICAST(a))
            return 1;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            struct sockaddr_in v4 = {.sin_family = AF_INET};
            memcpy(&v4.sin_addr, a->s6_addr + 12, 4);
            return internal_addr((struct sockaddr *)&v4);
        }
    }
    return 0;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void reply(int fd, int code, const char *status, const char *body)
{
    char *r = xasprintf("HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                        "Connection: close\r\n\r\n%s",
                        code, status, strlen(body), body);
    send_all(fd, r, strlen(r));
    free(r);
}

/* Connect to host:port with a timeout; internal addresses only for a literal grant. */
static int dial(const char *host, int port, int allow_internal, char *why, size_t whylen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    int e = getaddrinfo(host, ps, &hints, &ai);
    if (e) {
        snprintf(why, whylen, "cannot resolve %.200s: %s", host, gai_strerror(e));
        return -1;
    }
    int fd = -1, skipped = 0;
    snprintf(why, whylen, "no address of %.200s answered", host);
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        if (!allow_internal && internal_addr(a->ai_addr)) {
            skipped = 1;
            continue;
        }
        int s = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (s < 0)
            continue;
        if (connect(s, a->ai_addr, a->ai_addrlen) && errno != EINPROGRESS) {
            snprintf(why, whylen, "connect to %.200s:%d: %s", host, port, strerror(errno));
            close(s);
            continue;
        }
        struct pollfd pf = {s, POLLOUT, 0};
        int k = poll(&pf, 1, IO_TIMEOUT_MS);
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (k <= 0 || getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr) {
            snprintf(why, whylen, "connect to %.200s:%d: %s", host, port,
                     k == 0 ? "timed out" : strerror(soerr ? soerr : errno));
            close(s);
            continue;
        }
        fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
        fd = s;
    }
    freeaddrinfo(ai);
    if (fd < 0 && skipped)
        snprintf(why, whylen,
                 "%.200s resolves to a loopback or link-local address (grant the address itself to "
                 "reach it)",
                 host);
    return fd;
}

static void relay(int a, int b)
{
    char buf[65536];
    int open_a = 1, open_b = 1; /* still reading from a / from b */
    while (open_a || open_b) {
        struct pollfd pf[2] = {{a, open_a ? POLLIN : 0, 0}, {b, open_b ? POLLIN : 0, 0}};
        int k = poll(pf, 2, -1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return;
        for (int i = 0; i < 2; i++) {
            int from = i ? b : a, to = i ? a : b;
            int *open = i ? &open_b : &open_a;
            if (!*open || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = recv(from, buf, sizeof buf, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                *open = 0;
                shutdown(to, SHUT_WR);
                if (r < 0)
                    return;
                continue;
            }
            if (send_all(to, buf, (size_t)r))
                return;
        }
    }
}

static void *serve(void *arg)
{
    struct conn *c = arg;
    struct netproxy *np = c->np;
    struct s2_error err = S2_ERROR_INIT;
    struct netproxy_request rq = {0};
    char *buf = xmalloc(HEAD_MAX + 1);
    size_t len = 0;
    struct timeval tv = {IO_TIMEOUT_MS / 1000, 0};
    setsockopt(c->cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (len < HEAD_MAX && !find_head_end(buf, len)) {
        ssize_t r = recv(c->cfd, buf + len, HEAD_MAX - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto out;
        len += (size_t)r;
    }
    if (netproxy_parse_request(buf, len, &rq, &err)) {
        log_warn("proxy: task %s: refused a malformed request: %s", np->label, err.msg);
        char *body = xasprintf("s2 proxy: %s\n", err.msg);
        reply(c->cfd, 400, "Bad Request", body);
        free(body);
        pthread_mutex_lock(&np->mu);
        np->refused++;
        pthread_mutex_unlock(&np->mu);
        goto out;
    }
    pthread_mutex_lock(&np->mu);
    const struct netproxy_grant *g = grant_for(np, rq.host, rq.port);
    int literal = g && g->literal;
    if (!g)
        np->refused++;
    pthread_mutex_unlock(&np->mu);
    if (!g) {
        log_warn("proxy: task %s: refused %s %s:%d (not granted)", np->label, rq.method, rq.host,
                 rq.port);
        char *body = xasprintf("s2 proxy: %s:%d is not granted to this task (the swarm's "
                               "contract lists the endpoints a task may reach)\n",
                               rq.host, rq.port);
        reply(c->cfd, 403, "Forbidden", body);
        free(body);
        goto out;
    }
    char why[512];
    int u = dial(rq.host, rq.port, literal, why, sizeof why);
    if (u < 0) {
        log_warn("proxy: task %s: %s %s:%d failed: %s", np->label, rq.method, rq.host, rq.port,
                 why);
        char *body = xasprintf("s2 proxy: %s\n", why);
        reply(c->cfd, 502, "Bad Gateway", body);
        free(body);
        pthread_mutex_lock(&np->mu);
        np->refused++;
        pthread_mutex_unlock(&np->mu);
        goto out;
    }
    pthread_mutex_lock(&np->mu);
    c->ufd = u;
    int stopping = np->stopping;
    np->served++;
    pthread_mutex_unlock(&np->mu);
    if (stopping)
        goto out;
    log_info("proxy: task %s: %s %s:%d", np->label, rq.method, rq.host, rq.port);
    tv.tv_sec = 0;
    setsockopt(c->cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (rq.connect) {
        static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
        if (send_all(c->cfd, ok, sizeof ok - 1))
            goto out;
    } else if (send_all(u, rq.forward, strlen(rq.forward))) {
        goto out;
    }
    /* bytes the client sent after the head go on as they are */
    if (len > rq.head_len && send_all(u, buf + rq.head_len, len - rq.head_len))
        goto out;
    relay(c->cfd, u);
out:
    free(rq.forward);
    free(buf);
    s2_error_release(&err);
    pthread_mutex_lock(&np->mu);
    close(c->cfd);
    if (c->ufd >= 0)
        close(c->ufd);
    c->cfd = c->ufd = -1;
    c->finished = 1;
    np->live--;
    pthread_mutex_unlock(&np->mu);
    return NULL;
}

/* Join the threads of finished connections (np->mu held). */
static void collect(struct netproxy *np)
{
    for (struct conn **pp = &np->conns; *pp;) {
        struct conn *c = *pp;
        if (c->finished) {
            pthread_join(c->th, NULL);
            *pp = c->next;
            free(c);
        } else {
            pp = &c->next;
        }
    }
}

void netproxy_handle(struct netproxy *np, int fd)
{
    pthread_mutex_lock(&np->mu);
    collect(np);
    if (np->stopping || np->live >= CONN_MAX) {
        np->refused++;
        pthread_mutex_unlock(&np->mu);
        log_warn("proxy: task %s: refused a connection (%s)", np->label,
                 np->stopping ? "stopping" : "too many at once");
        close(fd);
        return;
    }
    struct conn *c = xcalloc(1, sizeof *c);
    c->np = np;
    c->cfd = fd;
    c->ufd = -1;
    if (pthread_create(&c->th, NULL, serve, c)) {
        np->refused++;
        pthread_mutex_unlock(&np->mu);
        log_error("proxy: task %s: cannot start a thread: %s", np->label, strerror(errno));
        close(fd);
        free(c);
        return;
    }
    np->live++;
    c->next = np->conns;
    np->conns = c;
    pthread_mutex_unlock(&np->mu);
}

void netproxy_free(struct netproxy *np)
{
    if (!np)
        return;
    pthread_mutex_lock(&np->mu);
    np->stopping = 1;
    for (struct conn *c = np->conns; c; c = c->next) {
        if (c->cfd >= 0)
            shutdown(c->cfd, SHUT_RDWR);
        if (c->ufd >= 0)
            shutdown(c->ufd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&np->mu);
    for (struct conn *c = np->conns, *next; c; c = next) {
        next = c->next;
        pthread_join(c->th, NULL);
        free(c);
    }
    for (size_t i = 0; i < np->ng; i++)
        netproxy_grant_release(&np->g[i]);
    free(np->g);
    pthread_mutex_destroy(&np->mu);
    free(np->label);
    free(np);
}
