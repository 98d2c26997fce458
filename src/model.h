/* model.h: the domain's vocabulary, shared by the engine, the store, the API and the CLI:
 * states and their names, the limits every input is held to, and the specs (what a client
 * asks to create) with their validation. No I/O and no state here. */
#ifndef S2_MODEL_H
#define S2_MODEL_H

#include <stdint.h>
#include <stddef.h>

#include "error.h"
#include "util/strvec.h"

/* ---- limits (docs/HTTP.md "Limits") ---- */
#define S2_ID_MAX 128            /* swarm, agent, task, model ids */
#define S2_CAP_MAX 128           /* one capability name */
#define S2_CAPS_MAX 64           /* capabilities in one list */
#define S2_DEPS_MAX 256          /* depends_on entries of one task */
#define S2_TITLE_MAX 1024
#define S2_TEXT_MAX 4096         /* role, reason, branch */
#define S2_BODY_MAX (256 * 1024) /* task body (instructions) */
#define S2_RESULT_MAX (256 * 1024)
#define S2_BATCH_MAX 10000       /* tasks in one create request */
#define S2_PHASE_MAX 1000000
#define S2_PRIORITY_MAX 1000000
#define S2_TIER_MAX 9
#define S2_ATTEMPTS_MAX 100
#define S2_LEASE_MS_MIN 100
#define S2_LEASE_MS_MAX (24LL * 3600 * 1000)
#define S2_BACKOFF_MS_MAX (3600LL * 1000)
#define S2_WAIT_MS_MAX (300LL * 1000)
#define S2_USD_MAX 1000000000.0  /* budgets, costs: at most a billion dollars */
#define S2_TOKENS_MAX 1000000000000LL
#define S2_LEASES_MAX 1000       /* max concurrent leases of one agent */
#define S2_PATHS_MAX 64          /* path globs of one task */
#define S2_PATH_MAX 256          /* one path glob */

#define S2_DEFAULT_LEASE_MS (5LL * 60 * 1000)
#define S2_DEFAULT_BACKOFF_MS 1000
#define S2_DEFAULT_MAX_ATTEMPTS 3
#define S2_BACKOFF_CAP_MS (10LL * 60 * 1000)

/* One US dollar in the integer unit every amount is kept in (no float drift). */
#define S2_MICRO 1000000LL

/* ---- enumerations ---- */
enum task_state {
    TASK_PENDING,
    TASK_READY,
    TASK_CLAIMED,
    TASK_DONE,
    TASK_DEAD,
    TASK_CANCELLED,
    TASK_NSTATES
};

enum relation { REL_PEER, REL_CRITICAL, REL_SUPPORT };
enum swarm_state { SWARM_ACTIVE, SWARM_PAUSED, SWARM_TRIPPED };
enum approval_kind { APPROVAL_NONE, APPROVAL_HUMAN, APPROVAL_QUORUM };

const char *task_state_name(int s);
int task_state_parse(const char *s); /* -1 if unknown */
const char *relation_name(int r);
int relation_parse(const char *s);
const char *swarm_state_name(int s);

/* ---- names ---- */
/* ids: 1..128 of [A-Za-z0-9._:-], starting with a letter or digit. what names the field in
 * the error ("task id", "swarm"). */
int model_check_id(const char *id, const char *what, struct s2_error *err);
/* capabilities: 1..128 of [A-Za-z0-9._:/+-], starting with a letter or digit */
int model_check_cap(const char *cap, const char *what, struct s2_error *err);
/* A list of capabilities: each valid, at most S2_CAPS_MAX, no duplicates. */
int model_check_caps(const struct strvec *caps, const char *what, struct s2_error *err);
/* Length of the valid UTF-8 sequence at s (1..4), or 0 if the bytes there are not one. */
int model_utf8_len(const char *s);
/* Free text: valid UTF-8, no control characters except \n and \t (\r too when multiline),
 * at most max bytes. */
int model_check_text(const char *s, size_t max, int multiline, const char *what,
                     struct s2_error *err);
/* "none" | "human" | "quorum:N" (1 <= N <= 100) */
int model_parse_approval(const char *s, int *kind, int *n, struct s2_error *err);
/* Write the canonical approval string into out (>= 16 bytes). */
void model_format_approval(int kind, int n, char *out, size_t outlen);
/* USD (a JSON number) to micro-dollars, rounding to the nearest; rejects negative, NaN and
 * amounts past S2_USD_MAX. */
int model_usd_to_micro(double usd, int64_t *out, const char *what, struct s2_error *err);

/* ---- specs: what a client asks for ---- */
struct swarm_spec {
    char *id;
    char *role;
    int relation;
    struct strvec caps;
    int64_t budget_micro; /* 0: no budget set */
    char *branch;
};

struct agent_spec {
    char *id;
    char *swarm;
    char *model;
    struct strvec caps;
    int64_t max_leases;
};

struct model_spec {
    char *name;
    int64_t tier;
    int64_t usd_in_micro;  /* per million input tokens */
    int64_t usd_out_micro; /* per million output tokens */
};

struct task_spec {
    char *id; /* NULL: the engine generates one */
    char *swarm;
    int64_t phase;
    char *title;
    char *body;
    struct strvec requires;
    int64_t min_tier;
    int64_t priority;
    struct strvec depends_on;
    int64_t max_attempts;
    int64_t lease_ms;
    int64_t backoff_ms;
    int approval_kind, approval_n;
    int phase_barrier; /* 1: wait for earlier phases of the swarm (default) */
    double estimate_h;
    int64_t estimate_micro;
    int64_t max_cost_micro; /* 0: none */
    struct strvec paths;    /* path globs it touches: never claimed with an overlapping task */
    int kind;               /* TASK_KIND_*: made by the governor for help and idle work */
    char *help_for;         /* help task: the blocked task it serves */
};

enum task_kind { TASK_KIND_NORMAL, TASK_KIND_HELP, TASK_KIND_IDLE };

/* Usage an agent reports with heartbeat/done/fail. */
struct usage {
    int present;
    char *model; /* NULL: the agent's own model */
    int64_t tokens_in, tokens_out;
    int64_t usd_micro; /* -1: not given (priced from tokens) */
};

void swarm_spec_init(struct swarm_spec *s);
void swarm_spec_release(struct swarm_spec *s);
void agent_spec_init(struct agent_spec *a);
void agent_spec_release(struct agent_spec *a);
void model_spec_release(struct model_spec *m);
void task_spec_init(struct task_spec *t);
void task_spec_release(struct task_spec *t);
void usage_release(struct usage *u);

/* Field-level validation (formats, ranges, lengths); the engine checks references. */
int swarm_spec_check(const struct swarm_spec *s, struct s2_error *err);
int agent_spec_check(const struct agent_spec *a, struct s2_error *err);
int model_spec_check(const struct model_spec *m, struct s2_error *err);
/* prefix names the task in messages, e.g. "tasks[3]" */
int task_spec_check(const struct task_spec *t, const char *prefix, struct s2_error *err);

/* A path glob a task declares: relative, '/'-separated, no "." or ".." segments, no
 * backslash or control characters; '*', '?' and '**' allowed. */
int model_check_path(const char *p, const char *what, struct s2_error *err);
/* Could some file match both globs? Conservative: compares the literal parts before the
 * first wildcard segment, so it may say yes for globs that never meet, never no for ones
 * that do. */
int model_paths_overlap(const char *a, const char *b);

/* Price usage in micro-dollars from per-million-token prices. */
int64_t model_price(int64_t tokens_in, int64_t tokens_out, int64_t usd_in_micro,
                    int64_t usd_out_micro);

#endif
