/* chassis.h: run one command in a sandbox (Linux). Strict mode: user, mount, pid, net, ipc,
 * uts and cgroup namespaces; a read-only view of the system with a private writable task
 * directory at /s2; no_new_privs and a seccomp filter; limits through cgroup v2 where its
 * controllers are available, rlimits otherwise; a wall-clock timeout that kills the whole
 * process tree. The sandbox never sees the worker's environment, files or network: what
 * the command gets is exactly what the caller hands it in a chassis_spec.
 *
 * The setup is a chain of steps in nsjail's order: the parent clones the child into new
 * namespaces, writes its uid/gid maps and puts it in its cgroup while it waits on a
 * socket; the child (PID 1 of the new pid namespace) builds the mount tree, pivots into
 * it, drops its privileges, then forks the command, which sets rlimits, closes stray fds,
 * installs seccomp last and execs. PID 1 stays to reap, forward signals and hand
 * connections to the in-sandbox proxy port out to the worker (see netproxy.h). */
#ifndef S2_CHASSIS_H
#define S2_CHASSIS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "util/buf.h"
#include "util/strvec.h"

enum chassis_mode {
    CHASSIS_STRICT = 0, /* every mechanism; refuses to start where the kernel lacks one */
    CHASSIS_NONE = 1,   /* no isolation: rlimits, a process group, the timeout; for trusted use */
};

/* Inside the strict sandbox the task directory is mounted here; the command starts in
 * CHASSIS_TASK_ROOT "/ws". */
#define CHASSIS_TASK_ROOT "/s2"
/* The uid and gid the command runs as inside the user namespace. */
#define CHASSIS_UID 1000
#define CHASSIS_GID 1000
/* What that uid maps to outside when the worker runs as root ("nobody"). */
#define CHASSIS_ROOT_MAP_ID 65534
/* The loopback port inside the sandbox where the proxy listens when a task may connect out. */
#define CHASSIS_PROXY_PORT 3128

/* Resource limits of one run; 0 means "no limit" for each. */
struct chassis_limits {
    int64_t memory_bytes;    /* cgroup memory.max, else RLIMIT_DATA */
    int cpu_percent;         /* cgroup cpu.max (100 = one core) */
    int64_t cpu_seconds;     /* RLIMIT_CPU when there is no cpu controller */
    int pids;                /* cgroup pids.max, else RLIMIT_NPROC */
    int open_files;          /* RLIMIT_NOFILE */
    int64_t file_size_bytes; /* RLIMIT_FSIZE */
    int64_t tmp_bytes;       /* size of /tmp and /dev/shm (tmpfs); 0: 64 MiB */
};

struct chassis_config {
    enum chassis_mode mode;
    const char *workdir;         /* absolute; the worker's directory (hidden inside) */
    const struct strvec *hide;   /* more paths to hide (dirs: empty tmpfs; files: /dev/null) */
    const struct strvec *expose; /* paths under hidden ones to show read-only */
    int seccomp_errno;           /* errno of denied syscalls (0: EPERM; tests use others) */
    int no_cgroup;               /* do not use cgroup v2 even where it is writable */
};

struct chassis;

/* Set up what every run shares: the seccomp program, the cgroup parent of this worker
 * (cgroup v2 where writable), the hidden paths. Strict mode fails (with the reason and a
 * pointer to `s2 worker --check`) when the host cannot give a sandbox. Caller frees with
 * chassis_free (which removes the cgroups it made). Not thread-safe; the chassis itself
 * can be shared by threads that each run their own sandbox. */
int chassis_new(struct chassis **out, const struct chassis_config *cfg, struct s2_error *err);
void chassis_free(struct chassis *ch);
enum chassis_mode chassis_mode(const struct chassis *ch);
/* How limits are enforced for a run, e.g. "cgroup pids.max" or "RLIMIT_NPROC". */
const char *chassis_mechanism(const struct chassis *ch, const char *what);

/* Why a run ended, as far as the sandbox can tell. */
enum chassis_end {
    CHASSIS_EXITED,   /* the command exited (exit_code) */
    CHASSIS_SIGNALED, /* the command was killed by a signal (term_signal) */
    CHASSIS_TIMEOUT,  /* the wall-clock timeout killed the tree */
    CHASSIS_STOPPED,  /* the caller's stop request killed the tree */
    CHASSIS_ABORTED,  /* on_tick asked to stop (e.g. the lease was lost) */
    CHASSIS_SETUP,    /* the sandbox could not be set up or the command not exec'd */
};

struct chassis_spec {
    char *const *argv; /* the command; argv[0] is looked up in PATH of envp */
    /* strict mode: exec this path inside the sandbox (e.g. under /s2) instead of argv[0]
     * looked up on the host; the caller put it there. NULL: look argv[0] up */
    const char *exec_inside;
    char *const *envp;      /* its whole environment (nothing else is passed) */
    const char *task_dir;   /* host directory mounted at /s2 (read-write); holds ws/ */
    const char *stdin_path; /* file given as stdin (NULL: /dev/null) */
    /* host directory bound read-write at /s2/ws instead of task_dir's own ws/ (a git
     * worktree); NULL: task_dir/ws */
    const char *workspace;
    /* NULL-terminated absolute host paths shown read-only at the same place inside (a
     * repository's git directory), then paths hidden again below them; NULL: none */
    const char *const *ro_paths;
    const char *const *masked;
    struct chassis_limits limits;
    int64_t timeout_ms;    /* 0: none */
    int64_t kill_grace_ms; /* SIGTERM to the tree, then SIGKILL after this (default 2000) */
    int proxy;             /* listen on 127.0.0.1:CHASSIS_PROXY_PORT inside (strict mode) */
    size_t stdout_max;     /* bytes of stdout kept (more is counted, not kept) */
    size_t stderr_keep;    /* bytes of stderr kept: the last ones (a tail) */
    int stop_fd;           /* readable: stop (after stop_grace_ms); -1: none */
    int64_t stop_grace_ms;
    int force_fd; /* readable: stop now; -1: none */
    int tick_ms;  /* on_tick period; 0: never */
    /* Called on the run's thread. on_tick returns nonzero to kill the run (ABORTED).
     * on_connection gets a connected socket to the in-sandbox proxy port and owns it.
     * on_stderr_line gets each complete stderr line (without the newline; lines longer
     * than 64 KiB are cut). Any may be NULL. */
    int (*on_tick)(void *ctx);
    void (*on_connection)(void *ctx, int fd);
    void (*on_stderr_line)(void *ctx, const char *line, size_t len);
    void *ctx;
};

struct chassis_result {
    enum chassis_end end;
    int exit_code;    /* CHASSIS_EXITED */
    int term_signal;  /* CHASSIS_SIGNALED */
    int started;      /* the command was exec'd */
    int oom;          /* the cgroup's OOM killer fired */
    struct buf out;   /* stdout, at most stdout_max bytes */
    size_t out_total; /* bytes the command wrote to stdout */
    struct buf err;   /* the last stderr_keep bytes of stderr */
    size_t err_total;
    char *setup_error;   /* CHASSIS_SETUP: "mount proc on /proc: Operation not permitted" */
    struct strvec notes; /* what the sandbox degraded (e.g. no fresh /proc) */
    int64_t start_ns;    /* from clone to exec of the command */
    int64_t run_ns;      /* from clone to the end */
    char *cgroup;        /* the task's cgroup (for messages) or NULL */
};

void chassis_result_init(struct chassis_result *r);
void chassis_result_release(struct chassis_result *r);

/* Run spec in a sandbox to completion: start, capture, enforce the timeout and stop
 * requests, reap, clean up. Returns 0 when the run happened (whatever the command did:
 * see res->end), <0 with err when the worker itself failed (pipes, clone, maps; a setup
 * failure inside the sandbox is res->end == CHASSIS_SETUP, not an error). Thread-safe
 * for distinct results; the caller owns res (chassis_result_release). */
int chassis_run(struct chassis *ch, const struct chassis_spec *spec, struct chassis_result *res,
                struct s2_error *err);

/* Human text for how a run ended: "exit status 3", "killed by signal 9 (SIGKILL)",
 * "timed out after 2 s", ... (caller frees). */
char *chassis_describe_end(const struct chassis_result *r, const struct chassis_spec *spec);

/* What this host offers (for `s2 worker --check`): user namespaces (also unprivileged),
 * each namespace, seccomp, cgroup v2 and its controllers, and a real strict run of
 * /bin/true. Returns a new JSON object (caller decrefs). */
json_t *chassis_check(const struct chassis_config *cfg);

/* 0 when the command at path (absolute) is visible inside the sandbox; <0 with err naming
 * the hidden directory and the --expose that would show it. */
int chassis_command_visible(const struct chassis *ch, const char *path, struct s2_error *err);

/* Look argv0 up in the PATH of envp (or take it as is when it has a '/'). Caller frees;
 * NULL with err when not found or not executable. */
char *chassis_find_command(const char *argv0, char *const *envp, struct s2_error *err);

/* The mount plan of a strict run, one line per step, as the sandbox would see it (for
 * tests, and printed by `s2 worker --check --log-level debug`). Caller frees. */
char *chassis_plan_text(struct chassis *ch, const struct chassis_spec *spec);

#endif
