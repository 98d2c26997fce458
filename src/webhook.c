/* webhook.c: the escalation webhook's delivery thread (libcurl). It never touches engine
 * state: it gets copies of the URL and body, and its only output is the log. */
#include "webhook.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "version.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct job {
    char *url, *body;
    int64_t timeout_ms;
    int retries;
    struct job *next;
};

struct webhook {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;
    int stop;
    int64_t stop_deadline_ns;
    uint64_t sent, failed, queued;
};

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* One attempt: 0 when the receiver answered 2xx. */
static int deliver(CURL *curl, const struct job *j, char *why, size_t whylen)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "User-Agent: s2/" S2_VERSION);
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, j->url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)j->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)j->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode rc = curl_easy_perform(curl);
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "%s", curl_easy_strerror(rc));
        return -1;
    }
    if (code < 200 || code > 299) {
        snprintf(why, whylen, "HTTP %ld", code);
        return -1;
    }
    return 0;
}

static void *webhook_main(void *arg)
{
    struct webhook *w = arg;
    CURL *curl = curl_easy_init();
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->head)
            break;
        struct job *j = w->head;
        w->head = j->next;
        if (!w->head)
            w->tail = NULL;
        pthread_mutex_unlock(&w->mu);
        char why[256] = "";
        int ok = 0;
        for (int attempt = 0; curl && attempt <= j->retries; attempt++) {
            if (deliver(curl, j, why, sizeof why) == 0) {
                ok = 1;
                break;
            }
            /* back off 1 s, 2 s, 4 s ... unless we are being stopped past our grace */
            pthread_mutex_lock(&w->mu);
            int give_up = w->stop && clock_mono_ns() > w->stop_deadline_ns;
            if (!give_up && attempt < j->retries) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1 << (attempt < 5 ? attempt : 5);
                pthread_cond_timedwait(&w->cv, &w->mu, &ts);
                give_up = w->stop && clock_mono_ns() > w->stop_deadline_ns;
            }
            pthread_mutex_unlock(&w->mu);
            if (give_up)
                break;
        }
        if (ok)
            log_info("webhook: escalation delivered to %s", j->url);
        else
            log_error("webhook: could not deliver an escalation to %s after %d attempt%s: %s",
                      j->url, j->retries + 1, j->retries ? "s" : "", curl ? why : "no curl");
        pthread_mutex_lock(&w->mu);
        if (ok)
            w->sent++;
        else
            w->failed++;
        w->queued--;
        free(j->url);
        free(j->body);
        free(j);
        if (w->stop && clock_mono_ns() > w->stop_deadline_ns)
            break;
    }
    pthread_mutex_unlock(&w->mu);
    if (curl)
        curl_easy_cleanup(curl);
    return NULL;
}

struct webhook *webhook_new(void)
{
    struct webhook *w = xcalloc(1, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, webhook_main, w)) {
        log_error("webhook: cannot start its thread: escalations will only be logged");
        w->stop = 1;
    }
    return w;
}

void webhook_post(struct webhook *w, const char *url, int64_t timeout_ms, int retries,
                  const char *json)
{
    struct job *j = xcalloc(1, sizeof *j);
    j->url = xstrdup(url);
    j->body = xstrdup(json);
    j->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    j->retries = retries;
    pthread_mutex_lock(&w->mu);
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    w->queued++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void webhook_counts(struct webhook *w, uint64_t *sent, uint64_t *failed, uint64_t *queued)
{
    pthread_mutex_lock(&w->mu);
    *sent = w->sent;
    *failed = w->failed;
    *queued = w->queued;
    pthread_mutex_unlock(&w->mu);
}

void webhook_free(struct webhook *w, int64_t grace_ms)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    int had_thread = !w->stop;
    w->stop = 1;
    w->stop_deadline_ns = clock_mono_ns() + grace_ms * 1000000;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (had_thread)
        pthread_join(w->thread, NULL);
    while (w->head) {
        struct job *j = w->head;
        w->head = j->next;
        log_error("webhook: escalation to %s dropped at shutdown", j->url);
        free(j->url);
        free(j->body);
        free(j);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
