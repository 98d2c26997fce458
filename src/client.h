/* client.h: the CLI's HTTP client (libcurl): JSON requests to `s2 serve` with the bearer
 * token, errors turned into s2_error with the server's own message, and an SSE reader for
 * `s2 watch`. One client per thread. */
#ifndef S2_CLIENT_H
#define S2_CLIENT_H

#include <jansson.h>
#include <stdatomic.h>

#include "error.h"

struct client {
    void *curl; /* CURL * */
    char *base; /* "http://127.0.0.1:7411" without trailing slash */
    char *token;
    void *headers; /* struct curl_slist * */
    long timeout_ms; /* per request; 0: none */
    char *last_body; /* the last reply when it was not JSON (e.g. /metrics text) */
    atomic_int *cancel; /* when set and nonzero, the call in progress is abandoned */
};

#define S2_DEFAULT_SERVER "http://127.0.0.1:7411"

/* server NULL: $S2_SERVER or the default; token NULL: $S2_TOKEN (may be unset). */
int client_init(struct client *c, const char *server, const char *token, struct s2_error *err);
void client_release(struct client *c);

/* method + path (starting with /), body NULL or JSON (borrowed). On 2xx: *status set, *out
 * the parsed reply (NULL for an empty one), 0 returned. Otherwise <0 and err carries the
 * server's error (or why it could not be reached). */
int client_call(struct client *c, const char *method, const char *path, json_t *body,
                long *status, json_t **out, struct s2_error *err);
/* The last reply's body when it was not JSON, or NULL. */
const char *client_last_body(struct client *c);
/* Read the reply headers of the last call: the value of name or NULL. */
const char *client_last_header(struct client *c, const char *name);

/* GET an event stream; on_event is called for each event (id may be NULL); a nonzero return
 * stops. Returns 0 when the server ends the stream. */
int client_stream(struct client *c, const char *path,
                  int (*on_event)(void *ctx, const char *id, const char *event, const char *data),
                  void *ctx, struct s2_error *err);

/* URL-escape one path segment or query value (caller frees). */
char *client_escape(const char *s);

#endif
