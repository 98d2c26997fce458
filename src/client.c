/* client.c: libcurl underneath the CLI. */
#include "client.h"
#include "util/buf.h"
#include "util/xalloc.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REPLY_MAX (64u * 1024 * 1024)

/* per thread, as clients are (one per thread): the S2-Reason of the last reply */
static _Thread_local char last_reason[256];

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct buf *b = ud;
    return buf_add(b, p, size * n) ? 0 : size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    (void)ud;
    size_t len = size * n;
    if (len > 10 && !strncasecmp(p, "S2-Reason:", 10)) {
        const char *v = p + 10;
        while (*v == ' ')
            v++;
        size_t k = (size_t)(p + len - v);
        while (k && (v[k - 1] == '\r' || v[k - 1] == '\n'))
            k--;
        if (k >= sizeof last_reason)
            k = sizeof last_reason - 1;
        memcpy(last_reason, v, k);
        last_reason[k] = 0;
    }
    return len;
}

int client_init(struct client *c, const char *server, const char *token, struct s2_error *err)
{
    memset(c, 0, sizeof *c);
    static int global;
    if (!global) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        global = 1;
    }
    if (!server)
        server = getenv("S2_SERVER");
    if (!server || !*server)
        server = S2_DEFAULT_SERVER;
    if (!token)
        token = getenv("S2_TOKEN");
    if (strncmp(server, "http://", 7) && strncmp(server, "https://", 8))
        return s2_fail(err, S2_EINVAL, "usage",
                       "server '%s' must start with http:// or https://", server);
    c->base = xstrdup(server);
    size_t n = strlen(c->base);
    while (n && c->base[n - 1] == '/')
        c->base[--n] = 0;
    c->token = token && *token ? xstrdup(token) : NULL;
    c->curl = curl_easy_init();
    if (!c->curl)
        return s2_fail(err, S2_EINTERNAL, "curl", "cannot initialise libcurl");
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Accept: application/json");
    h = curl_slist_append(h, "Expect:");
    if (c->token) {
        char *auth = xasprintf("Authorization: Bearer %s", c->token);
        h = curl_slist_append(h, auth);
        free(auth);
    }
    c->headers = h;
    c->timeout_ms = 60000;
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "s2-cli");
    return 0;
}

void client_release(struct client *c)
{
    if (c->curl)
        curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->headers);
    free(c->last_body);
    free(c->base);
    free(c->token);
    memset(c, 0, sizeof *c);
}

char *client_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *out = xstrdup(e ? e : "");
    curl_free(e);
    return out;
}

static enum s2_err kind_of(long status)
{
    switch (status) {
    case 400: return S2_EINVAL;
    case 401: return S2_EUNAUTH;
    case 403: return S2_EFORBIDDEN;
    case 404: return S2_ENOTFOUND;
    case 405: return S2_EMETHOD;
    case 409: return S2_ECONFLICT;
    case 413: return S2_ETOOBIG;
    case 429: return S2_ERATE;
    case 503: return S2_EUNAVAIL;
    default: return status >= 500 ? S2_EINTERNAL : S2_EINVAL;
    }
}

static int transport_error(struct client *c, CURLcode rc, struct s2_error *err)
{
    return s2_fail(err, S2_EUNAVAIL, "unreachable",
                   "cannot reach s2 at %s: %s (is `s2 serve` running? set S2_SERVER or --server)",
                   c->base, curl_easy_strerror(rc));
}

const char *client_last_body(struct client *c)
{
    return c->last_body;
}

const char *client_last_header(struct client *c, const char *name)
{
    (void)c;
    if (!strcasecmp(name, "S2-Reason"))
        return last_reason[0] ? last_reason : NULL;
    return NULL;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    return atomic_load((atomic_int *)ud) != 0;
}

int client_call(struct client *c, const char *method, const char *path, json_t *body,
                long *status, json_t **out, struct s2_error *err)
{
    struct buf reply = BUF_INIT;
    buf_init(&reply, REPLY_MAX);
    char *url = xasprintf("%s%s", c->base, path);
    char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    CURL *h = c->curl;
    last_reason[0] = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPGET, 0L);
    if (!strcmp(method, "GET"))
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    if (payload) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
    } else if (!strcmp(method, "POST")) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, c->cancel ? 0L : 1L);
    if (c->cancel) {
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, c->cancel);
    }
    CURLcode rc = curl_easy_perform(h);
    free(url);
    free(payload);
    int ret = 0;
    long code = 0;
    if (rc != CURLE_OK) {
        ret = transport_error(c, rc, err);
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (status)
        *status = code;
    json_t *j = NULL;
    free(c->last_body);
    c->last_body = NULL;
    if (reply.len) {
        json_error_t je;
        j = json_loadb(reply.ptr, reply.len, 0, &je);
        if (!j)
            c->last_body = xstrndup(reply.ptr, reply.len);
    }
    if (code >= 200 && code < 300) {
        if (out)
            *out = j;
        else
            json_decref(j);
        goto out;
    }
    json_t *e = json_object_get(j, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *ecode = json_string_value(json_object_get(e, "code"));
    ret = s2_fail(err, kind_of(code), NULL, "%s", msg ? msg : "server answered with an error");
    if (err && ecode) {
        /* keep the server's code: it outlives j only through a static table, so copy it */
        static _Thread_local char codebuf[64];
        snprintf(codebuf, sizeof codebuf, "%s", ecode);
        err->code = codebuf;
    }
    if (err && !msg) {
        free(err->msg);
        err->msg = xasprintf("server answered %ld %s", code, reply.len ? reply.ptr : "");
    }
    json_decref(j);
out:
    buf_release(&reply);
    return ret;
}

/* ---- event stream ---- */

struct sse {
    struct buf line, data;
    char id[32], event[64];
    int (*fn)(void *, const char *, const char *, const char *);
    void *ctx;
    int stop;
};

static void sse_line(struct sse *s, const char *l)
{
    if (!*l) {
        if (s->data.len && !s->stop)
            s->stop = s->fn(s->ctx, s->id[0] ? s->id : NULL, s->event[0] ? s->event : "message",
                            s->data.ptr);
        buf_reset(&s->data);
        s->event[0] = 0;
        return;
    }
    if (*l == ':')
        return;
    const char *v = strchr(l, ':');
    size_t k = v ? (size_t)(v - l) : strlen(l);
    v = v ? v + 1 : "";
    if (*v == ' ')
        v++;
    if (k == 4 && !strncmp(l, "data", 4)) {
        if (s->data.len)
            buf_addch(&s->data, '\n');
        buf_adds(&s->data, v);
    } else if (k == 2 && !strncmp(l, "id", 2)) {
        snprintf(s->id, sizeof s->id, "%s", v);
    } else if (k == 5 && !strncmp(l, "event", 5)) {
        snprintf(s->event, sizeof s->event, "%s", v);
    }
}

static size_t on_stream(char *p, size_t size, size_t n, void *ud)
{
    struct sse *s = ud;
    size_t len = size * n;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\n') {
            size_t l = s->line.len;
            if (l && s->line.ptr[l - 1] == '\r')
                s->line.ptr[--s->line.len] = 0;
            sse_line(s, s->line.ptr);
            buf_reset(&s->line);
            if (s->stop)
                return 0;
        } else if (buf_addch(&s->line, p[i])) {
            return 0;
        }
    }
    return len;
}

int client_stream(struct client *c, const char *path,
                  int (*on_event)(void *ctx, const char *id, const char *event, const char *data),
                  void *ctx, struct s2_error *err)
{
    struct sse s = {.fn = on_event, .ctx = ctx};
    buf_init(&s.line, 1 << 20);
    buf_init(&s.data, 0);
    char *url = xasprintf("%s%s", c->base, path);
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 0L);
    CURLcode rc = curl_easy_perform(h);
    free(url);
    int ret = 0;
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (s.stop)
        ret = 0;
    else if (rc != CURLE_OK)
        ret = transport_error(c, rc, err);
    else if (code != 200)
        ret = s2_fail(err, kind_of(code), NULL, "event stream refused with HTTP %ld", code);
    buf_release(&s.line);
    buf_release(&s.data);
    return ret;
}
