/* chassis.c: the sandbox. The parent plans every mount and limit before it clones (the
 * child of a multithreaded worker may not allocate: another thread may hold malloc's lock
 * at the moment of the clone), so the child only walks the plan with system calls and
 * reports the first failing step with its errno over the control socket.
 * Never give the command anything the spec does not name: no inherited fd, variable,
 * capability, mount or network. */
#include "chassis.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <grp.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <sched.h>
#include <termios.h>
#include <unistd.h>

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef SECCOMP_SET_MODE_FILTER
#define SECCOMP_SET_MODE_FILTER 1
#endif

#define NS_FLAGS                                                                                   \
    (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)
#define TMP_DEFAULT (64LL << 20)
#define SMALL_FILE_MAX (4 << 20) /* /proc and cgroup files read whole */
#define LINE_MAX_STDERR (64 * 1024)

/* ---- the control protocol between the worker and PID 1 of the sandbox ---- */

enum { MSG_GO = 1, MSG_ERR, MSG_NOTE, MSG_STARTED, MSG_CONN, MSG_EXIT };

struct msg {
    int32_t type;
    int32_t err;   /* MSG_ERR: errno */
    int32_t value; /* MSG_EXIT: wait status */
    char text[244];
};

/* Paths the sandbox hides by default: homes, runtime sockets, logs, mail, boot files. */
static const char *const default_hidden[] = {
    "/root",      "/home",     "/run",         "/mnt",     "/media",
    "/srv",       "/boot",     "/lost+found",  "/var/tmp", "/var/log",
    "/var/spool", "/var/mail", "/var/backups", "/var/run", NULL};

/* Denied with EPERM (see docs/CHASSIS.md "Seccomp"): an agent's command never needs to
 * mount, trace, load kernel code, use kernel keyrings, reboot, change the clock, enter or
 * create namespaces, or open files by handle (which bypasses the mount tree). io_uring is
 * denied because its operations are not seen by seccomp; process_vm_* and kcmp because
 * they read other processes. EPERM rather than killing: programs probe for features and
 * fall back, and the agent sees an error it can report instead of a silent death. */
static const char *const denied_syscalls[] = {"mount",
                                              "umount",
                                              "umount2",
                                              "pivot_root",
                                              "chroot",
                                              "fsopen",
                                              "fsconfig",
                                              "fsmount",
                                              "fspick",
                                              "move_mount",
                                              "open_tree",
                                              "mount_setattr",
                                              "ptrace",
                                              "process_vm_readv",
                                              "process_vm_writev",
                                              "kcmp",
                                              "kexec_load",
                                              "kexec_file_load",
                                              "bpf",
                                              "init_module",
                                              "finit_module",
                                              "delete_module",
                                              "create_module",
                                              "get_kernel_syms",
                                              "query_module",
                                              "keyctl",
                                              "add_key",
                                              "request_key",
                                              "perf_event_open",
                                              "reboot",
                                              "swapon",
                                              "swapoff",
                                              "setns",
                                              "unshare",
                                              "open_by_handle_at",
                                              "name_to_handle_at",
                                              "userfaultfd",
                                              "acct",
                                              "quotactl",
                                              "quotactl_fd",
                                              "lookup_dcookie",
                                              "syslog",
                                              "vhangup",
                                              "settimeofday",
                                              "clock_settime",
                                              "clock_adjtime",
                                              "iopl",
                                              "ioperm",
                                              "uselib",
                                              "_sysctl",
                                              "nfsservctl",
                                              "io_uring_setup",
                                              "io_uring_enter",
                                              "io_uring_register",
                                              NULL};

/* ---- the worker-wide state ---- */

struct cgroups {
    char *mount;  /* the cgroup2 mount point */
    char *base;   /* the cgroup we started in (absolute path) */
    char *parent; /* this worker's cgroup: tasks are made under it */
    char *self;   /* when we moved into parent/worker: that leaf */
    int memory, pids, cpu, kill;
    atomic_uint next;
};

struct chassis {
    enum chassis_mode mode;
    char *workdir;
    char *root_mnt; /* workdir/.root: where each sandbox mounts its new root */
    struct strvec hide, expose;
    int root; /* the worker runs as root: map to nobody, drop groups */
    uid_t uid;
    gid_t gid;
    struct sock_fprog prog;
    int cap_last;
    struct cgroups cg;
    int have_cg;
};

enum chassis_mode chassis_mode(const struct chassis *ch)
{
    return ch->mode;
}

const char *chassis_mechanism(const struct chassis *ch, const char *what)
{
    int cg = ch->have_cg;
    if (!strcmp(what, "memory"))
        return cg && ch->cg.memory ? "cgroup memory.max" : "RLIMIT_DATA";
    if (!strcmp(what, "pids"))
        return cg && ch->cg.pids ? "cgroup pids.max" : "RLIMIT_NPROC";
    if (!strcmp(what, "cpu"))
        return cg && ch->cg.cpu ? "cgroup cpu.max" : "RLIMIT_CPU";
    if (!strcmp(what, "kill"))
        return ch->mode == CHASSIS_STRICT
                   ? (cg && ch->cg.kill ? "pid namespace + cgroup.kill" : "pid namespace")
                   : (cg && ch->cg.kill ? "process group + cgroup.kill" : "process group");
    return "rlimit";
}

/* ---- small file helpers (parent side) ---- */

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int e = w == (ssize_t)n ? 0 : (w < 0 ? -errno : -EIO);
    close(fd);
    return e;
}


/* ---- seccomp: built once with libseccomp, exported as BPF for the children ---- */

static int build_filter(struct chassis *ch, int deny_errno, struct s2_error *err)
{
    int rc = -1;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return s2_fail(err, S2_EINTERNAL, "seccomp", "seccomp: cannot initialise libseccomp");
    uint32_t deny = SCMP_ACT_ERRNO((uint32_t)deny_errno);
    const char *step = "";
    int e = 0;
    /* other ABIs on this CPU (i386 on x86_64) would bypass a native filter: kill */
    if ((e = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS))) {
        step = "foreign-ABI action";
        goto out;
    }
    for (const char *const *n = denied_syscalls; *n; n++) {
        int nr = seccomp_syscall_resolve_name(*n);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not a system call on this architecture */
        if ((e = seccomp_rule_add(ctx, deny, nr, 0))) {
            step = *n;
            goto out;
        }
    }
    /* new namespaces after setup: clone with any CLONE_NEW* flag */
    static const unsigned long nsflags[] = {CLONE_NEWUSER,  CLONE_NEWNS,  CLONE_NEWPID,
                                            CLONE_NEWNET,   CLONE_NEWIPC, CLONE_NEWUTS,
                                            CLONE_NEWCGROUP};
    for (size_t i = 0; i < sizeof nsflags / sizeof nsflags[0]; i++)
        if ((e = seccomp_rule_add(ctx, deny, SCMP_SYS(clone), 1,
                                  SCMP_A0(SCMP_CMP_MASKED_EQ, nsflags[i], nsflags[i])))) {
            step = "clone";
            goto out;
        }
    /* clone3 passes its flags in memory, where seccomp cannot look: ENOSYS makes libc fall
     * back to clone, which the rules above can check */
    int nr3 = seccomp_syscall_resolve_name("clone3");
    if (nr3 != __NR_SCMP_ERROR && (e = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr3, 0))) {
        step = "clone3";
        goto out;
    }
    /* pushing characters into a terminal's input (TIOCSTI) or the console (TIOCLINUX) */
    static const unsigned long ioctls[] = {TIOCSTI, TIOCLINUX};
    for (size_t i = 0; i < 2; i++)
        if ((e = seccomp_rule_add(ctx, deny, SCMP_SYS(ioctl), 1,
                                  SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, ioctls[i])))) {
            step = "ioctl";
            goto out;
        }
    int fd = memfd_create("s2-seccomp", MFD_CLOEXEC);
    if (fd < 0) {
        e = -errno;
        step = "memfd_create";
        goto out;
    }
    if ((e = seccomp_export_bpf(ctx, fd))) {
        close(fd);
        step = "export";
        goto out;
    }
    off_t len = lseek(fd, 0, SEEK_END);
    if (len <= 0 || len % (off_t)sizeof(struct sock_filter) || len > 65536 * 8) {
        close(fd);
        e = -EINVAL;
        step = "export size";
        goto out;
    }
    struct sock_filter *f = xmalloc((size_t)len);
    ssize_t r = pread(fd, f, (size_t)len, 0);
    close(fd);
    if (r != len) {
        free(f);
        e = r < 0 ? -errno : -EIO;
        step = "read back";
        goto out;
    }
    ch->prog.filter = f;
    ch->prog.len = (unsigned short)(len / (off_t)sizeof(struct sock_filter));
    rc = 0;
out:
    seccomp_release(ctx);
    if (rc)
        return s2_fail(err, S2_EINTERNAL, "seccomp", "seccomp: cannot build the filter (%s): %s",
                       step, strerror(-e));
    return 0;
}

/* ---- cgroup v2 ---- */

/* The cgroup2 mount point from /proc/self/mountinfo (caller frees), or NULL. */
static char *cgroup2_mount(void)
{
    char *mi = fs_read_file("/proc/self/mountinfo", SMALL_FILE_MAX, 0, NULL);
    if (!mi)
        return NULL;
    char *found = NULL, *save = NULL;
    for (char *line = strtok_r(mi, "\n", &save); line && !found;
         line = strtok_r(NULL, "\n", &save)) {
        char *sep = strstr(line, " - ");
        if (!sep || strncmp(sep + 3, "cgroup2 ", 8))
            continue;
        /* fields: id parent dev root mountpoint ... */
        char *f = line;
        for (int i = 0; i < 4 && f; i++) {
            f = strchr(f, ' ');
            if (f)
                f++;
        }
        if (!f)
            continue;
        char *end = strchr(f, ' ');
        if (end)
            *end = 0;
        found = xstrdup(f);
    }
    free(mi);
    return found;
}

/* This process's cgroup v2 path ("/" for the root), or NULL. */
static char *cgroup2_self(void)
{
    char *c = fs_read_file("/proc/self/cgroup", SMALL_FILE_MAX, 0, NULL);
    if (!c)
        return NULL;
    char *found = NULL, *save = NULL;
    for (char *line = strtok_r(c, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if (!strncmp(line, "0::", 3)) {
            found = xstrdup(line + 3);
            break;
        }
    free(c);
    return found;
}

static int has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; p && (p = strstr(p, word)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ' || p[n] == '\n'))
            return 1;
    return 0;
}

static void enable_controllers(const char *cgdir, const char *avail)
{
    static const char *const want[] = {"memory", "pids", "cpu"};
    for (int i = 0; i < 3; i++) {
        if (!has_word(avail, want[i]))
            continue;
        char *p = xasprintf("%s/cgroup.subtree_control", cgdir);
        char *v = xasprintf("+%s", want[i]);
        int e = write_file(p, v);
        if (e)
            log_debug("cgroup: cannot enable %s in %s: %s", want[i], cgdir, strerror(-e));
        free(p);
        free(v);
    }
}

/* The pid in a name "PREFIX<pid>..." when that process no longer exists, else 0. */
static long dead_owner(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) || name[n] < '1' || name[n] > '9')
        return 0;
    long pid = strtol(name + n, NULL, 10);
    if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
        return 0;
    return pid;
}

/* Remove the cgroups of workers that died without cleaning up (kill -9): their processes
 * are gone with them, so the directories are empty. */
static void cg_reap_stale(const char *base)
{
    DIR *d = opendir(base);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (!dead_owner(de->d_name, "s2-worker-"))
            continue;
        char *dir = xasprintf("%s/%s", base, de->d_name);
        DIR *sub = opendir(dir);
        struct dirent *se;
        while (sub && (se = readdir(sub)))
            if (se->d_type == DT_DIR && se->d_name[0] != '.') {
                char *child = xasprintf("%s/%s", dir, se->d_name);
                if (rmdir(child))
                    log_debug("cgroup: cannot remove stale %s: %s", child, strerror(errno));
                free(child);
            }
        if (sub)
            closedir(sub);
        if (!rmdir(dir))
            log_debug("cgroup: removed %s, left by a worker that is gone", dir);
        free(dir);
    }
    if (d)
        closedir(d);
}

/* Make this worker's cgroup, with the memory, pids and cpu controllers enabled for its
 * task cgroups where the hierarchy lets us. Not an error when impossible: limits then use
 * rlimits, and the reason is logged. */
static void cg_setup(struct chassis *ch)
{
    struct cgroups *cg = &ch->cg;
    char *self = NULL, *avail = NULL, *sub = NULL;
    cg->mount = cgroup2_mount();
    self = cgroup2_self();
    if (!cg->mount || !self) {
        log_debug("cgroup: no cgroup v2 hierarchy (limits use rlimits)");
        goto out;
    }
    cg->base = !strcmp(self, "/") ? xstrdup(cg->mount) : xasprintf("%s%s", cg->mount, self);
    cg_reap_stale(cg->base);
    cg->parent = xasprintf("%s/s2-worker-%ld", cg->base, (long)getpid());
    if (mkdir(cg->parent, 0755) && errno != EEXIST) {
        log_debug("cgroup: cannot create %s: %s (limits use rlimits)", cg->parent, strerror(errno));
        free(cg->parent);
        cg->parent = NULL;
        goto out;
    }
    int is_root = !strcmp(self, "/");
    if (!is_root) {
        /* no processes in a cgroup whose children have controllers: move into a leaf */
        cg->self = xasprintf("%s/worker", cg->parent);
        char *procs = xasprintf("%s/cgroup.procs", cg->self);
        char pid[32];
        snprintf(pid, sizeof pid, "%ld", (long)getpid());
        if ((mkdir(cg->self, 0755) && errno != EEXIST) || write_file(procs, pid)) {
            log_debug("cgroup: cannot move the worker into %s: %s", cg->self, strerror(errno));
            rmdir(cg->self);
            free(cg->self);
            cg->self = NULL;
        }
        free(procs);
    }
    char *p = xasprintf("%s/cgroup.controllers", cg->base);
    avail = fs_read_file(p, SMALL_FILE_MAX, 0, NULL);
    free(p);
    enable_controllers(cg->base, avail ? avail : "");
    p = xasprintf("%s/cgroup.controllers", cg->parent);
    free(avail);
    avail = fs_read_file(p, SMALL_FILE_MAX, 0, NULL);
    free(p);
    enable_controllers(cg->parent, avail ? avail : "");
    p = xasprintf("%s/cgroup.subtree_control", cg->parent);
    sub = fs_read_file(p, SMALL_FILE_MAX, 0, NULL);
    free(p);
    cg->memory = has_word(sub, "memory");
    cg->pids = has_word(sub, "pids");
    cg->cpu = has_word(sub, "cpu");
    p = xasprintf("%s/cgroup.kill", cg->parent);
    cg->kill = access(p, F_OK) == 0;
    free(p);
    ch->have_cg = 1;
    log_debug("cgroup: tasks under %s (memory %s, pids %s, cpu %s, kill %s)", cg->parent,
              cg->memory ? "yes" : "no", cg->pids ? "yes" : "no", cg->cpu ? "yes" : "no",
              cg->kill ? "yes" : "no");
out:
    free(self);
    free(avail);
    free(sub);
}

static void cg_release(struct cgroups *cg)
{
    if (cg->self && cg->base) {
        char *procs = xasprintf("%s/cgroup.procs", cg->base);
        char pid[32];
        snprintf(pid, sizeof pid, "%ld", (long)getpid());
        if (!write_file(procs, pid))
            rmdir(cg->self);
        free(procs);
    }
    if (cg->parent && rmdir(cg->parent) && errno != ENOENT)
        log_warn("cgroup: cannot remove %s: %s", cg->parent, strerror(errno));
    free(cg->mount);
    free(cg->base);
    free(cg->parent);
    free(cg->self);
    memset(cg, 0, sizeof *cg);
}

/* A task cgroup with the run's limits; NULL (and a note) when it cannot be made. */
static char *cg_task_new(struct chassis *ch, const struct chassis_limits *l, struct strvec *notes)
{
    if (!ch->have_cg)
        return NULL;
    unsigned n = atomic_fetch_add(&ch->cg.next, 1);
    char *dir = xasprintf("%s/task-%u", ch->cg.parent, n);
    if (mkdir(dir, 0755)) {
        strvec_push_nodup(notes, xasprintf("cannot create cgroup %s: %s", dir, strerror(errno)));
        free(dir);
        return NULL;
    }
    struct {
        int on;
        const char *file;
        char val[64];
    } set[5] = {{0}};
    if (ch->cg.memory && l->memory_bytes > 0) {
        set[0].on = 1, set[0].file = "memory.max";
        snprintf(set[0].val, sizeof set[0].val, "%lld", (long long)l->memory_bytes);
        set[1].on = 1, set[1].file = "memory.swap.max";
        snprintf(set[1].val, sizeof set[1].val, "0");
        set[2].on = 1, set[2].file = "memory.oom.group";
        snprintf(set[2].val, sizeof set[2].val, "1");
    }
    if (ch->cg.pids && l->pids > 0) {
        set[3].on = 1, set[3].file = "pids.max";
        snprintf(set[3].val, sizeof set[3].val, "%d", l->pids);
    }
    if (ch->cg.cpu && l->cpu_percent > 0) {
        set[4].on = 1, set[4].file = "cpu.max";
        snprintf(set[4].val, sizeof set[4].val, "%d 100000", l->cpu_percent * 1000);
    }
    for (int i = 0; i < 5; i++) {
        if (!set[i].on)
            continue;
        char *p = xasprintf("%s/%s", dir, set[i].file);
        int e = write_file(p, set[i].val);
        if (e && !(e == -ENOENT && strcmp(set[i].file, "memory.max") &&
                   strcmp(set[i].file, "pids.max") && strcmp(set[i].file, "cpu.max")))
            strvec_push_nodup(notes,
                              xasprintf("cannot set %s to %s: %s", p, set[i].val, strerror(-e)));
        free(p);
    }
    return dir;
}

static void cg_kill(struct chassis *ch, const char *dir)
{
    if (!dir || !ch->cg.kill)
        return;
    char *p = xasprintf("%s/cgroup.kill", dir);
    int e = write_file(p, "1");
    if (e)
        log_warn("cgroup: cannot kill %s: %s", dir, strerror(-e));
    free(p);
}

static int cg_oom(const char *dir)
{
    if (!dir)
        return 0;
    char *p = xasprintf("%s/memory.events", dir);
    char *ev = fs_read_file(p, SMALL_FILE_MAX, 0, NULL);
    free(p);
    int oom = 0;
    const char *k = ev ? strstr(ev, "oom_kill ") : NULL;
    if (k)
        oom = atoi(k + 9) > 0;
    free(ev);
    return oom;
}

static void cg_task_remove(const char *dir)
{
    if (!dir)
        return;
    /* the last processes leave asynchronously after they die: retry briefly */
    for (int i = 0; i < 200; i++) {
        if (!rmdir(dir) || errno == ENOENT)
            return;
        if (errno != EBUSY)
            break;
        usleep(10000);
    }
    log_warn("cgroup: cannot remove %s: %s", dir, strerror(errno));
}

/* ---- chassis_new ---- */

static int probe_clone(unsigned long flags, int as_nobody);

/* May a user other than the owner walk through every directory down to path? */
static int searchable_by_others(const char *path)
{
    char *p = xstrdup(path);
    int ok = 1;
    for (char *s = p + strlen(p); ok && s > p; s--) {
        if (*s != '/' && s != p + strlen(p))
            continue;
        char c = *s;
        *s = 0;
        struct stat st;
        if (stat(*p ? p : "/", &st) || !(st.st_mode & S_IXOTH))
            ok = 0;
        *s = c;
    }
    free(p);
    return ok;
}

static void push_canonical(struct strvec *sv, const char *path)
{
    char *r = path[0] == '/' ? realpath(path, NULL) : NULL;
    /* a path that does not exist yet is kept as given (and checked below) */
    if (r && strcmp(r, "/"))
        strvec_push_nodup(sv, r);
    else {
        free(r);
        if (strvec_find(sv, path) < 0)
            strvec_push(sv, path);
    }
}

int chassis_new(struct chassis **out, const struct chassis_config *cfg, struct s2_error *err)
{
    struct chassis *ch = xcalloc(1, sizeof *ch);
    int rc = 0;
    ch->mode = cfg->mode;
    ch->uid = getuid();
    ch->gid = getgid();
    ch->root = geteuid() == 0;
    if (!cfg->workdir || cfg->workdir[0] != '/') {
        rc = s2_fail(err, S2_EINVAL, "usage", "the work directory must be an absolute path");
        goto fail;
    }
    ch->workdir = realpath(cfg->workdir, NULL);
    if (!ch->workdir) {
        rc = s2_fail(err, S2_EIO, "io", "work directory '%s': %s", cfg->workdir, strerror(errno));
        goto fail;
    }
    /* masks are mounted before the pivot, where an absolute symlink on the way would lead
     * out of the new root: hide and expose canonical paths */
    for (const char *const *h = default_hidden; *h; h++)
        push_canonical(&ch->hide, *h);
    for (size_t i = 0; cfg->hide && i < cfg->hide->n; i++)
        push_canonical(&ch->hide, cfg->hide->v[i]);
    strvec_push(&ch->hide, ch->workdir);
    for (size_t i = 0; cfg->expose && i < cfg->expose->n; i++)
        push_canonical(&ch->expose, cfg->expose->v[i]);
    for (size_t i = 0; i < ch->hide.n + ch->expose.n; i++) {
        const char *p = i < ch->hide.n ? ch->hide.v[i] : ch->expose.v[i - ch->hide.n];
        if (p[0] != '/' || strstr(p, "/../") || strstr(p, "/./") || !strcmp(p, "/")) {
            rc = s2_fail(err, S2_EINVAL, "usage",
                         "'%s' must be an absolute path without . or .. (and not /)", p);
            goto fail;
        }
    }
    if (ch->mode == CHASSIS_STRICT) {
        int e = probe_clone(NS_FLAGS, 0);
        if (e) {
            rc = s2_fail(err, S2_EUNAVAIL, "sandbox",
                         "the strict sandbox is not available on this host: cannot create user, "
                         "mount, pid, net, ipc and uts namespaces: %s (see `s2 worker --check`; "
                         "--sandbox none runs commands without isolation)",
                         strerror(e));
            goto fail;
        }
        if (build_filter(ch, cfg->seccomp_errno ? cfg->seccomp_errno : EPERM, err)) {
            rc = S2_EINTERNAL;
            goto fail;
        }
        /* the new root's mount point is looked up by the sandbox user (nobody, when we are
         * root): under the workdir when every directory above it lets others through,
         * else in a directory of its own under /tmp */
        if (!ch->root || searchable_by_others(ch->workdir)) {
            ch->root_mnt = xasprintf("%s/.root", ch->workdir);
            if (mkdir(ch->root_mnt, 0711) && errno != EEXIST) {
                rc = s2_fail(err, S2_EIO, "io", "cannot create '%s': %s", ch->root_mnt,
                             strerror(errno));
                goto fail;
            }
        } else {
            DIR *d = opendir("/tmp");
            struct dirent *de;
            while (d && (de = readdir(d)))
                if (dead_owner(de->d_name, "s2-root-")) {
                    char *old = xasprintf("/tmp/%s", de->d_name);
                    rmdir(old); /* an empty mount point, left by a worker killed with -9 */
                    free(old);
                }
            if (d)
                closedir(d);
            ch->root_mnt = xasprintf("/tmp/s2-root-%ld-XXXXXX", (long)getpid());
            if (!mkdtemp(ch->root_mnt) || chmod(ch->root_mnt, 0711)) {
                rc = s2_fail(err, S2_EIO, "io", "cannot create '%s': %s", ch->root_mnt,
                             strerror(errno));
                goto fail;
            }
        }
        char *cl = fs_read_file("/proc/sys/kernel/cap_last_cap", SMALL_FILE_MAX, 0, NULL);
        ch->cap_last = cl ? atoi(cl) : CAP_LAST_CAP;
        free(cl);
        if (ch->cap_last <= 0 || ch->cap_last > 63)
            ch->cap_last = CAP_LAST_CAP;
    }
    if (!cfg->no_cgroup)
        cg_setup(ch);
    *out = ch;
    return 0;
fail:
    chassis_free(ch);
    return rc;
}

void chassis_free(struct chassis *ch)
{
    if (!ch)
        return;
    cg_release(&ch->cg);
    if (ch->root_mnt)
        rmdir(ch->root_mnt);
    free(ch->root_mnt);
    free(ch->workdir);
    free(ch->prog.filter);
    strvec_release(&ch->hide);
    strvec_release(&ch->expose);
    free(ch);
}

/* ---- the mount plan ---- */

enum op_kind {
    OP_TMPFS,   /* tmpfs at target (data: options), flags */
    OP_MKDIR,   /* a directory (EEXIST is fine) */
    OP_MKDIRS,  /* target's missing parents, then target as a dir (or a file when flags) */
    OP_FILE,    /* an empty file (a mount point for a file) */
    OP_SYMLINK, /* target -> src */
    OP_BIND,    /* bind src at target (MS_REC in flags: recursive), then apply flags */
    OP_BIND_FD, /* bind the path opened early as fd (opt) at target, then apply flags */
    OP_PROC,    /* a fresh proc; an empty read-only tmpfs and a note when not allowed */
    OP_MASK,    /* hide target: a dir under an empty read-only tmpfs, a file under /dev/null */
    OP_RDONLY,  /* remount target read-only */
};

#define OPT_SKIP_DENIED 0x1 /* unreachable for the sandbox user anyway: skip, no error */
#define FD_EARLY 4

struct op {
    enum op_kind kind;
    unsigned long flags;
    int opt;
    const char *src, *target, *data;
};

struct rl {
    int res;
    rlim_t val;
};

struct plan {
    const char *root; /* the new root's mount point (host path) */
    size_t rootlen;
    struct op *ops;
    size_t nops, cap;
    struct strvec pool;
    const char *exec_path;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    const char *task_dir; /* host path, opened by the child in its own mount namespace */
    /* paths the child opens (O_PATH) before it becomes the sandbox user, as fds FD_EARLY,
     * FD_EARLY + 1, ...: the task directory, then --expose sources */
    const char *early[64];
    int nearly;
    int proxy;
    int root_user; /* setgroups allowed (the worker is root) */
    int cap_last;
    const struct sock_fprog *prog;
    struct rl rl[8];
    int nrl;
};

static const char *pool(struct plan *p, char *s)
{
    strvec_push_nodup(&p->pool, s);
    return s;
}

static void add_op(struct plan *p, enum op_kind k, const char *src, const char *target,
                   const char *data, unsigned long flags, int opt)
{
    p->ops = xgrow(p->ops, sizeof *p->ops, p->nops + 1, &p->cap);
    p->ops[p->nops++] = (struct op){k, flags, opt, src, target, data};
}

static const char *under_root(struct plan *p, const char *path)
{
    return pool(p, xasprintf("%s%s", p->root, path));
}

static int is_hidden_top(const struct chassis *ch, const char *name)
{
    for (size_t i = 0; i < ch->hide.n; i++) {
        const char *h = ch->hide.v[i];
        if (h[0] == '/' && !strchr(h + 1, '/') && !strcmp(h + 1, name))
            return 1;
    }
    return 0;
}

static void plan_rlimits(struct plan *p, const struct chassis *ch, const struct chassis_limits *l)
{
    int cg = ch->have_cg;
    p->nrl = 0;
    p->rl[p->nrl++] = (struct rl){RLIMIT_CORE, 0};
    if (l->memory_bytes > 0 && !(cg && ch->cg.memory))
        p->rl[p->nrl++] = (struct rl){RLIMIT_DATA, (rlim_t)l->memory_bytes};
    if (l->pids > 0 && !(cg && ch->cg.pids))
        p->rl[p->nrl++] = (struct rl){RLIMIT_NPROC, (rlim_t)l->pids};
    if (l->cpu_seconds > 0 && !(cg && ch->cg.cpu))
        p->rl[p->nrl++] = (struct rl){RLIMIT_CPU, (rlim_t)l->cpu_seconds};
    if (l->open_files > 0)
        p->rl[p->nrl++] = (struct rl){RLIMIT_NOFILE, (rlim_t)l->open_files};
    if (l->file_size_bytes > 0)
        p->rl[p->nrl++] = (struct rl){RLIMIT_FSIZE, (rlim_t)l->file_size_bytes};
}

static void plan_release(struct plan *p)
{
    free(p->ops);
    strvec_release(&p->pool);
    memset(p, 0, sizeof *p);
}

/* Is path (or a parent of it) one of the hidden paths? */
static const char *hidden_by(const struct chassis *ch, const char *path)
{
    for (size_t i = 0; i < ch->hide.n; i++) {
        size_t n = strlen(ch->hide.v[i]);
        if (!strncmp(path, ch->hide.v[i], n) && (path[n] == 0 || path[n] == '/'))
            return ch->hide.v[i];
    }
    return NULL;
}

static int plan_build(struct chassis *ch, const struct chassis_spec *spec, const char *exec_path,
                      struct plan *p, struct s2_error *err)
{
    memset(p, 0, sizeof *p);
    p->root = ch->root_mnt;
    p->rootlen = strlen(p->root);
    p->exec_path = exec_path;
    p->argv = spec->argv;
    p->envp = spec->envp;
    p->cwd = CHASSIS_TASK_ROOT "/ws";
    p->task_dir = spec->task_dir;
    p->early[p->nearly++] = spec->task_dir;
    p->proxy = spec->proxy;
    p->root_user = ch->root;
    p->cap_last = ch->cap_last;
    p->prog = &ch->prog;
    plan_rlimits(p, ch, &spec->limits);
    int64_t tmp = spec->limits.tmp_bytes > 0 ? spec->limits.tmp_bytes : TMP_DEFAULT;
    const unsigned long RO = MS_RDONLY | MS_NOSUID | MS_NODEV;

    add_op(p, OP_TMPFS, NULL, p->root, "mode=0755,size=1m,nr_inodes=4096", MS_NOSUID | MS_NODEV, 0);
    DIR *d = opendir("/");
    if (!d)
        return s2_fail(err, S2_EIO, "io", "cannot list '/': %s", strerror(errno));
    struct dirent *de;
    int saw_tmp = 0;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, CHASSIS_TASK_ROOT + 1) ||
            !strcmp(n, "proc") || !strcmp(n, "dev"))
            continue;
        char *host = xasprintf("/%s", n);
        struct stat st;
        if (lstat(host, &st)) {
            free(host);
            continue;
        }
        const char *target = under_root(p, host);
        if (S_ISLNK(st.st_mode)) {
            char lnk[4096];
            ssize_t k = readlink(host, lnk, sizeof lnk - 1);
            if (k > 0) {
                lnk[k] = 0;
                add_op(p, OP_SYMLINK, pool(p, xstrdup(lnk)), target, NULL, 0, 0);
            }
            free(host);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            add_op(p, OP_MKDIR, NULL, target, NULL, 0, 0);
            if (!strcmp(n, "tmp")) {
                saw_tmp = 1;
                add_op(p, OP_TMPFS, NULL, target,
                       pool(p, xasprintf("mode=1777,size=%lld", (long long)tmp)),
                       MS_NOSUID | MS_NODEV, 0);
            } else if (!is_hidden_top(ch, n)) {
                add_op(p, OP_BIND, pool(p, host), target, NULL, MS_REC | RO, OPT_SKIP_DENIED);
                continue;
            }
        } else if (S_ISREG(st.st_mode) && !is_hidden_top(ch, n)) {
            add_op(p, OP_FILE, NULL, target, NULL, 0, 0);
            add_op(p, OP_BIND, pool(p, host), target, NULL, RO, OPT_SKIP_DENIED);
            continue;
        }
        free(host);
    }
    closedir(d);
    if (!saw_tmp) {
        const char *t = under_root(p, "/tmp");
        add_op(p, OP_MKDIR, NULL, t, NULL, 0, 0);
        add_op(p, OP_TMPFS, NULL, t, pool(p, xasprintf("mode=1777,size=%lld", (long long)tmp)),
               MS_NOSUID | MS_NODEV, 0);
    }
    /* a fresh /proc for the new pid namespace */
    const char *proc = under_root(p, "/proc");
    add_op(p, OP_MKDIR, NULL, proc, NULL, 0, 0);
    add_op(p, OP_PROC, NULL, proc, NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC, 0);
    /* /dev: the harmless nodes, bound from the host (no mknod in a user namespace) */
    const char *dev = under_root(p, "/dev");
    add_op(p, OP_MKDIR, NULL, dev, NULL, 0, 0);
    add_op(p, OP_TMPFS, NULL, dev, "mode=0755,size=64k,nr_inodes=64", MS_NOSUID | MS_NOEXEC, 0);
    static const char *const nodes[] = {"null", "zero", "full", "random", "urandom"};
    for (size_t i = 0; i < 5; i++) {
        char *host = xasprintf("/dev/%s", nodes[i]);
        const char *t = under_root(p, host);
        add_op(p, OP_FILE, NULL, t, NULL, 0, 0);
        add_op(p, OP_BIND, pool(p, host), t, NULL, MS_NOSUID | MS_NOEXEC, 0);
    }
    static const char *const links[][2] = {{"/proc/self/fd", "/dev/fd"},
                                           {"/proc/self/fd/0", "/dev/stdin"},
                                           {"/proc/self/fd/1", "/dev/stdout"},
                                           {"/proc/self/fd/2", "/dev/stderr"}};
    for (size_t i = 0; i < 4; i++)
        add_op(p, OP_SYMLINK, links[i][0], under_root(p, links[i][1]), NULL, 0, 0);
    const char *shm = under_root(p, "/dev/shm");
    add_op(p, OP_MKDIR, NULL, shm, NULL, 0, 0);
    add_op(p, OP_TMPFS, NULL, shm, pool(p, xasprintf("mode=1777,size=%lld", (long long)tmp)),
           MS_NOSUID | MS_NODEV | MS_NOEXEC, 0);
    add_op(p, OP_RDONLY, NULL, dev, NULL, MS_NOSUID | MS_NOEXEC, 0);
    /* hidden paths deeper than the top level (the workdir, the secrets file, --hide) */
    for (size_t i = 0; i < ch->hide.n; i++) {
        const char *h = ch->hide.v[i];
        if (!strchr(h + 1, '/'))
            continue; /* top level: never bound in the first place */
        add_op(p, OP_MASK, NULL, under_root(p, h), NULL, 0, OPT_SKIP_DENIED);
    }
    /* --expose: paths under hidden ones shown read-only */
    for (size_t i = 0; i < ch->expose.n; i++) {
        const char *x = ch->expose.v[i];
        struct stat st;
        if (stat(x, &st)) {
            int e = errno;
            plan_release(p);
            return s2_fail(err, S2_EINVAL, "usage", "cannot expose '%s': %s", x, strerror(e));
        }
        if (p->nearly >= (int)(sizeof p->early / sizeof p->early[0])) {
            plan_release(p);
            return s2_fail(err, S2_EINVAL, "usage", "too many --expose paths (at most 63)");
        }
        const char *t = under_root(p, x);
        add_op(p, OP_MKDIRS, NULL, t, NULL, S_ISDIR(st.st_mode) ? 0 : 1, 0);
        /* opened by the child while it has the worker's uid: the way there may be closed
         * to the sandbox user (a home directory) */
        p->early[p->nearly] = x;
        add_op(p, OP_BIND_FD, x, t, NULL, MS_REC | RO, FD_EARLY + p->nearly++);
    }
    /* the run's own read-only paths (a repository's git directory), at the same place;
     * opened early too: they may lie under a hidden directory */
    for (size_t i = 0; spec->ro_paths && spec->ro_paths[i]; i++) {
        const char *x = spec->ro_paths[i];
        struct stat st;
        if (x[0] != '/' || stat(x, &st)) {
            int e = x[0] != '/' ? EINVAL : errno;
            plan_release(p);
            return s2_fail(err, S2_EINVAL, "usage", "cannot show '%s' read-only: %s", x,
                           strerror(e));
        }
        if (p->nearly >= (int)(sizeof p->early / sizeof p->early[0]) - 1) {
            plan_release(p);
            return s2_fail(err, S2_EINVAL, "usage", "too many read-only paths (at most 62)");
        }
        const char *t = under_root(p, x);
        add_op(p, OP_MKDIRS, NULL, t, NULL, S_ISDIR(st.st_mode) ? 0 : 1, 0);
        p->early[p->nearly] = x;
        add_op(p, OP_BIND_FD, x, t, NULL, MS_REC | RO, FD_EARLY + p->nearly++);
    }
    for (size_t i = 0; spec->masked && spec->masked[i]; i++)
        if (spec->masked[i][0] == '/')
            add_op(p, OP_MASK, NULL, under_root(p, spec->masked[i]), NULL, 0, OPT_SKIP_DENIED);
    /* the task directory, read-write, at /s2 */
    const char *s2 = under_root(p, CHASSIS_TASK_ROOT);
    add_op(p, OP_MKDIR, NULL, s2, NULL, 0, 0);
    add_op(p, OP_BIND_FD, spec->task_dir, s2, NULL, MS_NOSUID | MS_NODEV, FD_EARLY);
    /* a workspace of its own (a git worktree) over /s2/ws */
    if (spec->workspace) {
        if (p->nearly >= (int)(sizeof p->early / sizeof p->early[0])) {
            plan_release(p);
            return s2_fail(err, S2_EINVAL, "usage", "too many paths to bind (at most 63)");
        }
        p->early[p->nearly] = spec->workspace;
        add_op(p, OP_BIND_FD, spec->workspace, under_root(p, CHASSIS_TASK_ROOT "/ws"), NULL,
               MS_NOSUID | MS_NODEV, FD_EARLY + p->nearly++);
    }
    add_op(p, OP_RDONLY, NULL, p->root, NULL, MS_NOSUID | MS_NODEV, 0);
    return 0;
}

static const char *op_name(enum op_kind k)
{
    static const char *const names[] = {
        "mount tmpfs on", "mkdir", "mkdir -p",      "create", "symlink",
        "bind",           "bind",  "mount proc on", "hide",   "remount read-only"};
    return names[k];
}

char *chassis_plan_text(struct chassis *ch, const struct chassis_spec *spec)
{
    struct plan p;
    struct s2_error err = S2_ERROR_INIT;
    if (plan_build(ch, spec, "/bin/true", &p, &err)) {
        char *m = xstrdup(err.msg);
        s2_error_release(&err);
        return m;
    }
    struct buf b = BUF_INIT;
    buf_init(&b, 0);
    for (size_t i = 0; i < p.nops; i++) {
        const struct op *o = &p.ops[i];
        const char *t = o->target + (strncmp(o->target, p.root, p.rootlen) ? 0 : p.rootlen);
        buf_addf(&b, "%s %s%s%s%s\n", op_name(o->kind), o->src ? o->src : "", o->src ? " -> " : "",
                 *t ? t : "/", o->flags & MS_RDONLY ? " (ro)" : "");
    }
    plan_release(&p);
    return buf_detach(&b, NULL);
}

/* ==== inside the child: system calls only, no allocation (see the file comment) ==== */

static int ctl_fd = 3;

/* Bounded copy of a and b into dst. */
static void cat2(char *dst, size_t n, const char *a, const char *b)
{
    size_t i = 0;
    for (; a && *a && i + 1 < n; a++)
        dst[i++] = *a;
    for (; b && *b && i + 1 < n; b++)
        dst[i++] = *b;
    dst[i] = 0;
}

static void send_ctl(int type, int e, int value, const char *a, const char *b)
{
    struct msg m;
    memset(&m, 0, sizeof m);
    m.type = type;
    m.err = e;
    m.value = value;
    cat2(m.text, sizeof m.text, a, b);
    ssize_t w = send(ctl_fd, &m, sizeof m, MSG_NOSIGNAL);
    (void)w;
}

static void __attribute__((noreturn)) child_fail(const char *step, const char *what)
{
    int e = errno;
    send_ctl(MSG_ERR, e, 0, step, what);
    _exit(127);
}

static long raw_clone(unsigned long flags)
{
    /* fork semantics (no new stack): flags, then zeros, are the same on x86_64 and arm64 */
    return syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
}

static unsigned long st_to_ms(unsigned long f)
{
    unsigned long m = 0;
    if (f & ST_RDONLY)
        m |= MS_RDONLY;
    if (f & ST_NOSUID)
        m |= MS_NOSUID;
    if (f & ST_NODEV)
        m |= MS_NODEV;
    if (f & ST_NOEXEC)
        m |= MS_NOEXEC;
    if (f & ST_NOATIME)
        m |= MS_NOATIME;
    if (f & ST_NODIRATIME)
        m |= MS_NODIRATIME;
    if (f & ST_RELATIME)
        m |= MS_RELATIME;
    return m;
}

/* Remount one mount with more flags, keeping the ones it has (some are locked when the
 * mount came from a more privileged namespace, and dropping them would be refused). */
static int remount_add(const char *target, unsigned long add)
{
    struct statfs sf;
    if (statfs(target, &sf))
        return -1;
    return mount(NULL, target, NULL,
                 MS_REMOUNT | MS_BIND | st_to_ms((unsigned long)sf.f_flags) | add, NULL);
}

static char mountinfo_buf[512 * 1024];

/* Read-only for target and every mount below it: mount_setattr(2) where the kernel has it
 * (5.12), else one remount per mount found in /proc/self/mountinfo. */
static int rdonly_recursive(const char *target, unsigned long extra)
{
    struct mount_attr a;
    memset(&a, 0, sizeof a);
    a.attr_set =
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | ((extra & MS_NODEV) ? MOUNT_ATTR_NODEV : 0);
    if (!syscall(SYS_mount_setattr, AT_FDCWD, target, AT_RECURSIVE, &a, sizeof a))
        return 0;
    if (errno != ENOSYS)
        return -1;
    int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    ssize_t r;
    while (len < sizeof mountinfo_buf - 1 &&
           (r = read(fd, mountinfo_buf + len, sizeof mountinfo_buf - 1 - len)) > 0)
        len += (size_t)r;
    close(fd);
    mountinfo_buf[len] = 0;
    size_t tl = strlen(target);
    for (char *line = mountinfo_buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        /* the fifth field is the mount point, with octal escapes (\040 for a space) */
        char *f = line;
        for (int i = 0; i < 4 && f; i++) {
            f = strchr(f, ' ');
            if (f)
                f++;
        }
        if (f) {
            char mp[4096];
            size_t k = 0;
            for (; *f && *f != ' ' && k + 1 < sizeof mp; f++) {
                if (f[0] == '\\' && f[1] >= '0' && f[1] <= '3' && f[2] && f[3]) {
                    mp[k++] = (char)(((f[1] - '0') << 6) | ((f[2] - '0') << 3) | (f[3] - '0'));
                    f += 3;
                } else {
                    mp[k++] = *f;
                }
            }
            mp[k] = 0;
            if (!strncmp(mp, target, tl) && (mp[tl] == 0 || mp[tl] == '/') &&
                remount_add(mp, MS_RDONLY | MS_NOSUID | (extra & MS_NODEV)) && errno != ENOENT &&
                errno != EACCES)
                return -1;
        }
        line = nl ? nl + 1 : NULL;
    }
    return 0;
}

/* mkdir -p under the new root. A directory on the way that the sandbox user cannot search
 * (a home, a 0700 temporary directory) is covered with a small tmpfs first: nothing under it
 * was reachable anyway, and the bound path beneath it now is; the tmpfs is made read-only
 * once the path exists. */
static int mkdirs(char *path, int leaf_is_file)
{
    size_t cover[8];
    int ncover = 0;
    for (char *s = path + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        int r = mkdir(path, 0755);
        if (r && errno == EACCES && ncover < 8) {
            char *up = strrchr(path, '/');
            if (up && up > path) {
                *up = 0;
                r = mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                          "mode=0755,size=64k,nr_inodes=64");
                if (!r)
                    cover[ncover++] = (size_t)(up - path);
                *up = '/';
                if (!r)
                    r = mkdir(path, 0755);
            }
        }
        *s = '/';
        if (r && errno != EEXIST)
            return -1;
    }
    int r = 0;
    if (leaf_is_file) {
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            r = -1;
        if (fd >= 0)
            close(fd);
    } else if (mkdir(path, 0755) && errno != EEXIST) {
        r = -1;
    }
    for (int i = ncover - 1; !r && i >= 0; i--) {
        char c = path[cover[i]];
        path[cover[i]] = 0;
        r = remount_add(path, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
        path[cover[i]] = c;
    }
    return r;
}

static void run_op(const struct plan *p, const struct op *o)
{
    const char *shown = o->target + (strncmp(o->target, p->root, p->rootlen) ? 0 : p->rootlen);
    if (!*shown)
        shown = "/";
    char step[512], tmp[400];
    cat2(tmp, sizeof tmp, op_name(o->kind), " ");
    if (o->src && o->kind != OP_SYMLINK) {
        cat2(step, sizeof step, tmp, o->src);
        cat2(tmp, sizeof tmp, step, " on ");
    }
    cat2(step, sizeof step, tmp, NULL);
    int r = 0;
    switch (o->kind) {
    case OP_TMPFS:
        r = mount("tmpfs", o->target, "tmpfs", o->flags, o->data);
        break;
    case OP_MKDIR:
        r = mkdir(o->target, 0755) && errno != EEXIST ? -1 : 0;
        break;
    case OP_MKDIRS: {
        char path[4096];
        cat2(path, sizeof path, o->target, NULL);
        r = mkdirs(path, (int)o->flags);
        break;
    }
    case OP_FILE: {
        int fd = open(o->target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        r = fd < 0 ? -1 : close(fd);
        break;
    }
    case OP_SYMLINK:
        r = symlink(o->src, o->target) && errno != EEXIST ? -1 : 0;
        break;
    case OP_BIND:
        r = mount(o->src, o->target, NULL, MS_BIND | (o->flags & MS_REC), NULL);
        if (r && (o->opt & OPT_SKIP_DENIED) && (errno == EACCES || errno == ENOENT))
            return;
        if (!r && (o->flags & ~MS_REC))
            r = (o->flags & MS_REC) ? rdonly_recursive(o->target, o->flags)
                                    : remount_add(o->target, o->flags & ~MS_REC);
        break;
    case OP_BIND_FD: {
        char fdpath[32] = "/proc/self/fd/";
        char num[12];
        int n = o->opt, k = 0;
        do
            num[k++] = (char)('0' + n % 10);
        while ((n /= 10) && k < 11);
        for (int i = 0; i < k; i++)
            fdpath[14 + i] = num[k - 1 - i];
        fdpath[14 + k] = 0;
        r = mount(fdpath, o->target, NULL, MS_BIND | (o->flags & MS_REC), NULL);
        if (!r && (o->flags & ~MS_REC))
            r = (o->flags & MS_REC) ? rdonly_recursive(o->target, o->flags)
                                    : remount_add(o->target, o->flags);
        break;
    }
    case OP_PROC:
        r = mount("proc", o->target, "proc", o->flags, NULL);
        if (r && (errno == EPERM || errno == EACCES)) {
            /* the host's /proc has hidden parts (a container): a fresh one would reveal
             * them, so the kernel refuses; an empty /proc is safer than the host's */
            send_ctl(MSG_NOTE, errno, 0,
                     "no fresh /proc (the kernel refused it): the task gets an empty /proc", NULL);
            r = mount("tmpfs", o->target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      "size=4k,nr_inodes=4");
        }
        break;
    case OP_MASK: {
        struct stat st;
        if (lstat(o->target, &st))
            return; /* absent, or the sandbox user cannot reach it anyway */
        if (S_ISDIR(st.st_mode))
            r = mount("tmpfs", o->target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      "mode=0755,size=4k,nr_inodes=4");
        else if (S_ISREG(st.st_mode) || S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode))
            r = mount("/dev/null", o->target, NULL, MS_BIND, NULL);
        else
            return;
        if (r && (o->opt & OPT_SKIP_DENIED) && (errno == EACCES || errno == ENOENT))
            return;
        break;
    }
    case OP_RDONLY:
        r = remount_add(o->target, MS_RDONLY | o->flags);
        break;
    }
    if (r)
        child_fail(step, shown);
}

static void close_stray(int keep_max)
{
    if (!syscall(SYS_close_range, keep_max + 1, ~0U, 0))
        return;
    /* before Linux 5.9: the open fds listed in /proc/self/fd */
    int d = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0) {
        for (int fd = keep_max + 1; fd < 4096; fd++)
            close(fd);
        return;
    }
    char b[4096];
    long n;
    int fds[512], k = 0;
    while ((n = syscall(SYS_getdents64, d, b, sizeof b)) > 0) {
        for (long off = 0; off < n;) {
            struct dirent64 *e = (struct dirent64 *)(b + off);
            int fd = atoi(e->d_name);
            if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && fd > keep_max && fd != d && k < 512)
                fds[k++] = fd;
            off += e->d_reclen;
        }
    }
    close(d);
    for (int i = 0; i < k; i++)
        close(fds[i]);
}

static void noop_handler(int sig)
{
    (void)sig;
}

/* The command: rlimits, stray fds, seccomp last, exec. Reports the failing step as
 * {step, errno} on fd 3 (close-on-exec: EOF means the exec happened). */
static void __attribute__((noreturn)) command_main(const struct plan *p, int exec_w)
{
    int rep[2] = {0, 0};
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (exec_w != 3 && dup3(exec_w, 3, O_CLOEXEC) < 0)
        _exit(127);
    setsid();
    for (int i = 0; i < p->nrl; i++) {
        struct rlimit r = {p->rl[i].val, p->rl[i].val};
        if (p->rl[i].res == RLIMIT_CPU)
            r.rlim_max = r.rlim_cur + 1; /* SIGXCPU first, SIGKILL a second later */
        if (setrlimit(p->rl[i].res, &r)) {
            rep[0] = 1, rep[1] = errno;
            goto fail;
        }
    }
    close_stray(3);
    if (p->prog && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, p->prog)) {
        rep[0] = 3, rep[1] = errno;
        goto fail;
    }
    execve(p->exec_path, p->argv, p->envp);
    rep[0] = 4, rep[1] = errno;
fail:;
    ssize_t w = write(3, rep, sizeof rep);
    (void)w;
    _exit(127);
}

static int lo_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    cat2(ifr.ifr_name, sizeof ifr.ifr_name, "lo", NULL);
    int r = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (!r) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        r = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    int e = errno;
    close(s);
    errno = e;
    return r;
}

static int proxy_listen(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0)
        return -1;
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(CHASSIS_PROXY_PORT);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 64)) {
        int e = errno;
        close(s);
        errno = e;
        return -1;
    }
    return s;
}

static void send_fd(int fd)
{
    struct msg m;
    memset(&m, 0, sizeof m);
    m.type = MSG_CONN;
    struct iovec iov = {&m, sizeof m};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    ssize_t w = sendmsg(ctl_fd, &mh, MSG_NOSIGNAL);
    (void)w;
}

/* PID 1 of the sandbox. fds: 0-2 the command's stdio, 3 the control socket. */
static void __attribute__((noreturn)) sandbox_init(const struct plan *p)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* signals: the worker's dispositions are not ours */
    for (int s = 1; s < 32; s++)
        if (s != SIGKILL && s != SIGSTOP)
            signal(s, SIG_DFL);
    struct msg m;
    ssize_t r;
    do
        r = recv(ctl_fd, &m, sizeof m, 0);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof m || m.type != MSG_GO)
        _exit(126); /* the worker gave up on us */

    /* the task directory and --expose sources, opened while we still have the worker's
     * uid (the way there may be closed to the sandbox user), in this mount namespace
     * (bind refuses another's) */
    for (int i = 0; i < p->nearly; i++) {
        int fd = open(p->early[i], O_PATH | O_CLOEXEC);
        if (fd < 0)
            child_fail("open ", p->early[i]);
        if (fd != FD_EARLY + i && (dup3(fd, FD_EARLY + i, O_CLOEXEC) < 0 || close(fd)))
            child_fail("move the fd of ", p->early[i]);
    }
    /* become the sandbox user now, keeping the namespace's capabilities for the setup (uid
     * 0 is not mapped, so the kernel does not clear them), so that files made during the
     * setup belong to a mapped user */
    if (p->root_user && setgroups(0, NULL))
        child_fail("setgroups", "");
    if (setresgid(CHASSIS_GID, CHASSIS_GID, CHASSIS_GID))
        child_fail("setresgid", "");
    if (setresuid(CHASSIS_UID, CHASSIS_UID, CHASSIS_UID))
        child_fail("setresuid", "");
    if (unshare(CLONE_NEWCGROUP))
        send_ctl(MSG_NOTE, errno, 0, "no cgroup namespace", NULL);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
        child_fail("make mounts private", "");
    for (size_t i = 0; i < p->nops; i++)
        run_op(p, &p->ops[i]);
    for (int i = 0; i < p->nearly; i++)
        close(FD_EARLY + i);
    if (sethostname("s2-sandbox", 10))
        child_fail("sethostname", "");
    if (lo_up())
        child_fail("bring up lo", "");
    int lfd = -1;
    if (p->proxy && (lfd = proxy_listen()) < 0)
        child_fail("listen on the proxy port", "");
    if (chdir(p->root))
        child_fail("chdir to the new root", "");
    if (syscall(SYS_pivot_root, ".", "."))
        child_fail("pivot_root", "");
    if (umount2(".", MNT_DETACH))
        child_fail("detach the old root", "");
    if (chdir(p->cwd))
        child_fail("chdir ", p->cwd);

    /* drop privileges: bounding set, ambient, then every capability */
    for (int c = 0; c <= p->cap_last; c++)
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) && errno != EINVAL)
            child_fail("drop the capability bounding set", "");
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &hdr, data))
        child_fail("drop capabilities", "");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
        child_fail("no_new_privs", "");
    /* not dumpable: the command (same uid) may not open our /proc/1/mem */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    /* signals: forwarded ones need a handler (PID 1 ignores default-handled signals) and
     * are read from a signalfd */
    static const int fwd[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD};
    sigset_t set;
    sigemptyset(&set);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = noop_handler;
    for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++) {
        sigaction(fwd[i], &sa, NULL);
        sigaddset(&set, fwd[i]);
    }
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0)
        child_fail("signalfd", "");
    int ep[2];
    if (pipe2(ep, O_CLOEXEC))
        child_fail("pipe", "");
    /* vfork: the command borrows our memory until its exec instead of a copy of the page
     * tables of the whole worker (we are a clone of it), a large part of the start */
    long cmd = vfork();
    if (cmd < 0)
        child_fail("fork the command", "");
    if (cmd == 0) {
        close(sfd);
        close(ep[0]);
        if (lfd >= 0)
            close(lfd);
        command_main(p, ep[1]);
    }
    close(ep[1]);
    int rep[2];
    do
        r = read(ep[0], rep, sizeof rep);
    while (r < 0 && errno == EINTR);
    close(ep[0]);
    if (r == (ssize_t)sizeof rep) {
        static const char *const steps[] = {"", "set rlimits", "close fds", "install seccomp",
                                            "exec "};
        send_ctl(MSG_ERR, rep[1], 0, steps[rep[0] >= 1 && rep[0] <= 4 ? rep[0] : 4],
                 rep[0] == 4 ? p->exec_path : "");
        kill((pid_t)cmd, SIGKILL);
        _exit(127);
    }
    send_ctl(MSG_STARTED, 0, (int)cmd, NULL, NULL);
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nul >= 0) {
        dup2(nul, 0), dup2(nul, 1), dup2(nul, 2);
        close(nul);
    } else {
        close(0), close(1), close(2);
    }
    if (p->prog)
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, p->prog);

    int done = 0, status = 0;
    for (;;) {
        struct pollfd pf[3] = {{sfd, POLLIN, 0}, {ctl_fd, POLLIN, 0}, {lfd, POLLIN, 0}};
        int n = poll(pf, lfd >= 0 ? 3 : 2, -1);
        if (n < 0 && errno != EINTR) {
            kill(-1, SIGKILL);
            _exit(125);
        }
        if (n <= 0)
            continue;
        if (pf[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                int sig = (int)si.ssi_signo;
                if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
                    kill(-1, sig); /* everyone but us: the whole tree */
                else if (sig != SIGCHLD)
                    kill((pid_t)cmd, sig);
            }
            pid_t w;
            int st;
            while ((w = waitpid(-1, &st, WNOHANG)) > 0)
                if (w == cmd)
                    done = 1, status = st;
        }
        if (pf[1].revents) {
            char tmp[sizeof(struct msg)];
            ssize_t k = recv(ctl_fd, tmp, sizeof tmp, MSG_DONTWAIT);
            if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
                kill(-1, SIGKILL); /* the worker is gone: nobody to report to */
                _exit(124);
            }
        }
        if (lfd >= 0 && (pf[2].revents & POLLIN)) {
            int c;
            while ((c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
                send_fd(c);
                close(c);
            }
        }
        if (done) {
            /* the command is over: so is everything it left behind */
            kill(-1, SIGKILL);
            while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
                ;
            send_ctl(MSG_EXIT, 0, status, NULL, NULL);
            _exit(0);
        }
    }
}

/* ==== the worker side ==== */

static int map_ids(pid_t pid, const struct chassis *ch, const char **step)
{
    char path[64], line[64];
    int e;
    unsigned out_uid = ch->root ? CHASSIS_ROOT_MAP_ID : (unsigned)ch->uid;
    unsigned out_gid = ch->root ? CHASSIS_ROOT_MAP_ID : (unsigned)ch->gid;
    if (!ch->root) {
        /* an unprivileged writer must give up setgroups before it may map gids */
        snprintf(path, sizeof path, "/proc/%ld/setgroups", (long)pid);
        if ((e = write_file(path, "deny")) && e != -ENOENT) {
            *step = "write setgroups";
            return e;
        }
    }
    snprintf(path, sizeof path, "/proc/%ld/uid_map", (long)pid);
    snprintf(line, sizeof line, "%u %u 1\n", CHASSIS_UID, out_uid);
    if ((e = write_file(path, line))) {
        *step = "write uid_map";
        return e;
    }
    snprintf(path, sizeof path, "/proc/%ld/gid_map", (long)pid);
    snprintf(line, sizeof line, "%u %u 1\n", CHASSIS_GID, out_gid);
    if ((e = write_file(path, line))) {
        *step = "write gid_map";
        return e;
    }
    return 0;
}

static int recv_msg(int fd, struct msg *m, int *passed_fd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = {m, sizeof *m};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    *passed_fd = -1;
    ssize_t r = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (r < 0)
        return errno == EAGAIN || errno == EINTR ? 1 : -1;
    if (r == 0)
        return 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            memcpy(passed_fd, CMSG_DATA(c), sizeof(int));
    if (r != (ssize_t)sizeof *m) {
        if (*passed_fd >= 0)
            close(*passed_fd);
        *passed_fd = -1;
        return 1;
    }
    m->text[sizeof m->text - 1] = 0;
    return 2;
}

void chassis_result_init(struct chassis_result *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->out, 0);
    buf_init(&r->err, 0);
}

void chassis_result_release(struct chassis_result *r)
{
    buf_release(&r->out);
    buf_release(&r->err);
    free(r->setup_error);
    free(r->cgroup);
    strvec_release(&r->notes);
    memset(r, 0, sizeof *r);
}

/* stdout: keep the first stdout_max bytes, count the rest */
static void keep_head(struct chassis_result *r, const char *p, size_t n, size_t max)
{
    r->out_total += n;
    if (r->out.len < max) {
        size_t k = max - r->out.len < n ? max - r->out.len : n;
        buf_add(&r->out, p, k);
    }
}

/* stderr: keep the last keep bytes */
static void keep_tail(struct chassis_result *r, const char *p, size_t n, size_t keep)
{
    r->err_total += n;
    if (!keep)
        return;
    if (n >= keep) {
        buf_reset(&r->err);
        buf_add(&r->err, p + n - keep, keep);
        return;
    }
    if (r->err.len + n > keep) {
        size_t drop = r->err.len + n - keep;
        memmove(r->err.ptr, r->err.ptr + drop, r->err.len - drop);
        r->err.len -= drop;
        r->err.ptr[r->err.len] = 0;
    }
    buf_add(&r->err, p, n);
}

struct lines {
    struct buf cur;
    int overlong;
};

static void feed_lines(struct lines *l, const char *p, size_t n, const struct chassis_spec *spec)
{
    if (!spec->on_stderr_line)
        return;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            spec->on_stderr_line(spec->ctx, l->cur.ptr, l->cur.len);
            buf_reset(&l->cur);
            l->overlong = 0;
        } else if (!l->overlong && buf_addch(&l->cur, p[i])) {
            l->overlong = 1; /* the line so far goes out cut; the rest is dropped */
        }
    }
}

struct run {
    struct chassis *ch;
    const struct chassis_spec *spec;
    struct chassis_result *res;
    pid_t pid;    /* init (strict) or the command (none) */
    int ctl;      /* strict: control socket */
    int pidfd;    /* none: pidfd of the command, or -1 (then we poll) */
    int out, err; /* read ends */
    int reaped;
    int exit_seen; /* strict: MSG_EXIT arrived */
    int status;
    int decided; /* res->end was set by us (timeout, stop, abort) */
    int64_t t0;
    int64_t kill_at; /* SIGKILL then (0: not scheduled) */
    int killed;
    struct lines lines;
};

static void signal_tree(struct run *rn, int sig)
{
    if (rn->reaped)
        return;
    if (rn->ch->mode == CHASSIS_STRICT)
        kill(rn->pid, sig); /* PID 1 forwards SIGTERM to everyone; SIGKILL ends the namespace */
    else
        kill(-rn->pid, sig);
    if (sig == SIGKILL) {
        cg_kill(rn->ch, rn->res->cgroup);
        rn->killed = 1;
    }
}

/* Decide how the run ends (the first decision stands) and signal the tree: SIGTERM now and
 * SIGKILL after the grace, or SIGKILL at once. */
static void decide(struct run *rn, enum chassis_end end, int now_kill)
{
    if (rn->reaped)
        return;
    if (!rn->decided) {
        rn->decided = 1;
        rn->res->end = end;
    } else if (!now_kill) {
        return;
    }
    if (now_kill) {
        signal_tree(rn, SIGKILL);
    } else {
        signal_tree(rn, SIGTERM);
        int64_t g = rn->spec->kill_grace_ms > 0 ? rn->spec->kill_grace_ms : 2000;
        rn->kill_at = clock_mono_ns() + g * 1000000;
    }
}

static int drain(struct run *rn, int *fd, int is_err)
{
    char b[65536];
    for (;;) {
        ssize_t r = read(*fd, b, sizeof b);
        if (r > 0) {
            if (is_err) {
                keep_tail(rn->res, b, (size_t)r, rn->spec->stderr_keep);
                feed_lines(&rn->lines, b, (size_t)r, rn->spec);
            } else {
                keep_head(rn->res, b, (size_t)r, rn->spec->stdout_max);
            }
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        close(*fd); /* EOF or error: done with this stream */
        *fd = -1;
        return 0;
    }
}

static void on_ctl(struct run *rn)
{
    for (;;) {
        struct msg m;
        int fd;
        int k = recv_msg(rn->ctl, &m, &fd);
        if (k == 1)
            return;
        if (k <= 0) {
            close(rn->ctl);
            rn->ctl = -1;
            return;
        }
        switch (m.type) {
        case MSG_ERR:
            if (!rn->res->setup_error) {
                rn->res->setup_error = xasprintf("%s: %s", m.text, strerror(m.err));
                if (!rn->decided) {
                    rn->decided = 1;
                    rn->res->end = CHASSIS_SETUP;
                }
            }
            break;
        case MSG_NOTE:
            strvec_push_nodup(&rn->res->notes, m.err ? xasprintf("%s (%s)", m.text, strerror(m.err))
                                                     : xstrdup(m.text));
            break;
        case MSG_STARTED:
            rn->res->started = 1;
            rn->res->start_ns = clock_mono_ns() - rn->t0;
            break;
        case MSG_CONN:
            if (fd >= 0) {
                if (rn->spec->on_connection)
                    rn->spec->on_connection(rn->spec->ctx, fd);
                else
                    close(fd);
                fd = -1;
            }
            break;
        case MSG_EXIT:
            rn->exit_seen = 1;
            rn->status = m.value;
            break;
        }
        if (fd >= 0)
            close(fd);
    }
}

static void reap(struct run *rn, int block)
{
    if (rn->reaped)
        return;
    int st;
    pid_t w;
    do
        w = waitpid(rn->pid, &st, block ? 0 : WNOHANG);
    while (w < 0 && errno == EINTR);
    if (w == rn->pid || (w < 0 && errno == ECHILD)) {
        rn->reaped = 1;
        if (rn->ch->mode == CHASSIS_NONE && w == rn->pid) {
            rn->exit_seen = 1;
            rn->status = st;
            /* what the command left in its process group goes with it */
            kill(-rn->pid, SIGKILL);
            cg_kill(rn->ch, rn->res->cgroup);
        }
    }
}

/* Start a strict sandbox: clone into the namespaces, map ids, join the cgroup, GO. */
static int start_strict(struct run *rn, const struct plan *p, int in, int out_w, int err_w,
                        struct s2_error *err)
{
    int sv[2] = {-1, -1}, rc = 0;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
        return s2_fail(err, S2_EIO, "sandbox", "sandbox: socketpair: %s", strerror(errno));
    /* straight into the task's cgroup where the kernel can (clone3, 5.7): moving a running
     * process there afterwards waits for an RCU grace period, a millisecond or more */
    long pid = -1;
    int in_cgroup = 0;
#ifdef SYS_clone3
    if (rn->res->cgroup) {
        int cfd = open(rn->res->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cfd >= 0) {
            struct {
                uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
                    set_tid, set_tid_size, cgroup;
            } ca;
            memset(&ca, 0, sizeof ca);
            ca.flags = NS_FLAGS | 0x200000000ULL; /* CLONE_INTO_CGROUP */
            ca.exit_signal = SIGCHLD;
            ca.cgroup = (uint64_t)cfd;
            pid = syscall(SYS_clone3, &ca, sizeof ca);
            in_cgroup = pid >= 0;
            if (pid != 0)
                close(cfd); /* the child closes its copy with the other stray fds */
        }
    }
#endif
    if (pid < 0)
        pid = raw_clone(NS_FLAGS);
    if (pid < 0) {
        rc = s2_fail(err, S2_EUNAVAIL, "sandbox", "sandbox: clone into new namespaces: %s",
                     strerror(errno));
        goto out;
    }
    if (pid == 0) {
        /* fds to their places (0-2 stdio, 3 control), via high numbers so that none
         * overwrites another, then nothing else */
        int want[4] = {in, out_w, err_w, sv[1]}, high[4];
        for (int i = 0; i < 4; i++)
            if ((high[i] = fcntl(want[i], F_DUPFD_CLOEXEC, 16)) < 0)
                _exit(127);
        for (int i = 0; i < 4; i++)
            if ((i < 3 ? dup2(high[i], i) : dup3(high[i], i, O_CLOEXEC)) < 0)
                _exit(127);
        close_stray(3);
        ctl_fd = 3;
        sandbox_init(p);
    }
    rn->pid = (pid_t)pid;
    close(sv[1]);
    sv[1] = -1;
    rn->ctl = sv[0];
    sv[0] = -1;
    const char *step = NULL;
    int e = map_ids(rn->pid, rn->ch, &step);
    if (!e && rn->res->cgroup && !in_cgroup) {
        char *procs = xasprintf("%s/cgroup.procs", rn->res->cgroup);
        char v[32];
        snprintf(v, sizeof v, "%ld", pid);
        if ((e = write_file(procs, v)))
            step = "join the task cgroup";
        free(procs);
    }
    if (!e) {
        struct msg m;
        memset(&m, 0, sizeof m);
        m.type = MSG_GO;
        if (send(rn->ctl, &m, sizeof m, MSG_NOSIGNAL) != (ssize_t)sizeof m) {
            e = -errno;
            step = "start the sandbox";
        }
    }
    if (e) {
        kill(rn->pid, SIGKILL);
        reap(rn, 1);
        rc = s2_fail(err, S2_EUNAVAIL, "sandbox", "sandbox: %s: %s", step, strerror(-e));
    }
out:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    return rc;
}

/* Start without isolation: a new session, rlimits, the task directory's ws/ as cwd. */
static int start_none(struct run *rn, const struct plan *p, int in, int out_w, int err_w,
                      struct s2_error *err)
{
    int sync[2], ep[2];
    char *cwd =
        rn->spec->workspace ? xstrdup(rn->spec->workspace) : xasprintf("%s/ws", rn->spec->task_dir);
    if (pipe2(sync, O_CLOEXEC)) {
        free(cwd);
        return s2_fail(err, S2_EIO, "sandbox", "pipe: %s", strerror(errno));
    }
    if (pipe2(ep, O_CLOEXEC)) {
        close(sync[0]), close(sync[1]);
        free(cwd);
        return s2_fail(err, S2_EIO, "sandbox", "pipe: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sync[0]), close(sync[1]), close(ep[0]), close(ep[1]);
        free(cwd);
        return s2_fail(err, S2_EUNAVAIL, "sandbox", "fork: %s", strerror(e));
    }
    if (pid == 0) {
        char go;
        close(sync[1]);
        if (read(sync[0], &go, 1) != 1)
            _exit(126);
        int rep[2] = {2, 0};
        int want[3] = {in, out_w, err_w}, high[3];
        for (int i = 0; i < 3; i++)
            if ((high[i] = fcntl(want[i], F_DUPFD_CLOEXEC, 16)) < 0)
                goto fail;
        for (int i = 0; i < 3; i++)
            if (dup2(high[i], i) < 0)
                goto fail;
        if (ep[1] != 3 && dup3(ep[1], 3, O_CLOEXEC) < 0)
            goto fail;
        if (chdir(cwd)) {
            rep[0] = 5;
            goto fail;
        }
        struct plan q = *p;
        q.prog = NULL;
        command_main(&q, 3);
    fail:
        rep[1] = errno;
        ssize_t w = write(ep[1], rep, sizeof rep);
        (void)w;
        _exit(127);
    }
    free(cwd);
    close(sync[0]);
    close(ep[1]);
    rn->pid = pid;
    if (rn->res->cgroup) {
        char *procs = xasprintf("%s/cgroup.procs", rn->res->cgroup);
        char v[32];
        snprintf(v, sizeof v, "%ld", (long)pid);
        int e = write_file(procs, v);
        if (e)
            strvec_push_nodup(&rn->res->notes, xasprintf("cannot join cgroup %s: %s",
                                                         rn->res->cgroup, strerror(-e)));
        free(procs);
    }
    ssize_t w = write(sync[1], "g", 1);
    (void)w;
    close(sync[1]);
    int rep[2];
    ssize_t r;
    do
        r = read(ep[0], rep, sizeof rep);
    while (r < 0 && errno == EINTR);
    close(ep[0]);
    if (r == (ssize_t)sizeof rep) {
        static const char *const steps[] = {
            "", "set rlimits", "set up stdio", "install seccomp", "exec", "chdir to the workspace"};
        rn->res->setup_error =
            xasprintf("%s%s%s: %s", steps[rep[0] >= 1 && rep[0] <= 5 ? rep[0] : 4],
                      rep[0] == 4 ? " " : "", rep[0] == 4 ? p->exec_path : "", strerror(rep[1]));
        rn->decided = 1;
        rn->res->end = CHASSIS_SETUP;
    } else {
        rn->res->started = 1;
        rn->res->start_ns = clock_mono_ns() - rn->t0;
    }
    rn->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    return 0;
}

int chassis_run(struct chassis *ch, const struct chassis_spec *spec, struct chassis_result *res,
                struct s2_error *err)
{
    struct run rn = {
        .ch = ch, .spec = spec, .res = res, .ctl = -1, .pidfd = -1, .out = -1, .err = -1};
    struct plan p;
    memset(&p, 0, sizeof p);
    int rc = 0, in = -1, op[2] = {-1, -1}, ep[2] = {-1, -1};
    char *exec_path = NULL;
    buf_init(&rn.lines.cur, LINE_MAX_STDERR);
    rn.t0 = clock_mono_ns();

    if (spec->exec_inside && ch->mode == CHASSIS_STRICT)
        exec_path = xstrdup(spec->exec_inside);
    else if (!(exec_path = chassis_find_command(spec->argv[0], spec->envp, err))) {
        rc = S2_EINVAL;
        goto out;
    }
    if (ch->mode == CHASSIS_STRICT) {
        if (!spec->exec_inside && chassis_command_visible(ch, exec_path, err)) {
            rc = S2_EINVAL;
            goto out;
        }
        if (plan_build(ch, spec, exec_path, &p, err)) {
            rc = S2_EINVAL;
            goto out;
        }
    } else {
        p.exec_path = exec_path;
        p.argv = spec->argv;
        p.envp = spec->envp;
        plan_rlimits(&p, ch, &spec->limits);
    }
    in = open(spec->stdin_path ? spec->stdin_path : "/dev/null", O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        rc = s2_fail(err, S2_EIO, "io", "cannot open '%s': %s",
                     spec->stdin_path ? spec->stdin_path : "/dev/null", strerror(errno));
        goto out;
    }
    if (pipe2(op, O_CLOEXEC) || pipe2(ep, O_CLOEXEC)) {
        rc = s2_fail(err, S2_EIO, "io", "pipe: %s", strerror(errno));
        goto out;
    }
    res->cgroup = cg_task_new(ch, &spec->limits, &res->notes);
    rc = ch->mode == CHASSIS_STRICT ? start_strict(&rn, &p, in, op[1], ep[1], err)
                                    : start_none(&rn, &p, in, op[1], ep[1], err);
    close(op[1]), close(ep[1]);
    op[1] = ep[1] = -1;
    if (rc)
        goto out;
    rn.out = op[0], rn.err = ep[0];
    op[0] = ep[0] = -1;
    fcntl(rn.out, F_SETFL, O_NONBLOCK);
    fcntl(rn.err, F_SETFL, O_NONBLOCK);

    int64_t deadline = spec->timeout_ms > 0 ? rn.t0 + spec->timeout_ms * 1000000 : 0;
    int64_t next_tick = spec->tick_ms > 0 ? rn.t0 + (int64_t)spec->tick_ms * 1000000 : 0;
    int64_t stop_at = 0, drain_until = 0;
    int stop_seen = 0, force_seen = 0;
    for (;;) {
        int64_t now = clock_mono_ns();
        if (rn.reaped && !drain_until)
            drain_until = now + 2000000000LL; /* pipes still open in escaped processes */
        if ((rn.reaped && rn.out < 0 && rn.err < 0) || (drain_until && now >= drain_until))
            break;
        if (!rn.reaped) {
            if (deadline && now >= deadline)
                decide(&rn, CHASSIS_TIMEOUT, 0);
            if (stop_at && now >= stop_at)
                decide(&rn, CHASSIS_STOPPED, 0);
            if (rn.kill_at && now >= rn.kill_at && !rn.killed)
                signal_tree(&rn, SIGKILL);
            if (next_tick && now >= next_tick) {
                next_tick = now + (int64_t)spec->tick_ms * 1000000;
                if (spec->on_tick && spec->on_tick(spec->ctx))
                    decide(&rn, CHASSIS_ABORTED, 1);
            }
        }
        struct pollfd pf[6];
        int n = 0, i_out = -1, i_err = -1, i_ctl = -1, i_pid = -1, i_stop = -1, i_force = -1;
        if (rn.out >= 0)
            i_out = n, pf[n++] = (struct pollfd){rn.out, POLLIN, 0};
        if (rn.err >= 0)
            i_err = n, pf[n++] = (struct pollfd){rn.err, POLLIN, 0};
        if (rn.ctl >= 0)
            i_ctl = n, pf[n++] = (struct pollfd){rn.ctl, POLLIN, 0};
        if (rn.pidfd >= 0 && !rn.reaped)
            i_pid = n, pf[n++] = (struct pollfd){rn.pidfd, POLLIN, 0};
        if (spec->stop_fd >= 0 && !stop_seen && !rn.reaped)
            i_stop = n, pf[n++] = (struct pollfd){spec->stop_fd, POLLIN, 0};
        if (spec->force_fd >= 0 && !force_seen && !rn.reaped)
            i_force = n, pf[n++] = (struct pollfd){spec->force_fd, POLLIN, 0};
        int64_t wake = drain_until;
        if (!rn.reaped) {
            int64_t c[4] = {rn.decided ? 0 : deadline, rn.decided ? 0 : stop_at,
                            rn.killed ? 0 : rn.kill_at, next_tick};
            for (int i = 0; i < 4; i++)
                if (c[i] && (!wake || c[i] < wake))
                    wake = c[i];
            /* no pidfd (old kernel) in none mode: poll the child */
            if (ch->mode == CHASSIS_NONE && rn.pidfd < 0 && (!wake || wake > now + 50000000))
                wake = now + 50000000;
        }
        int tmo = -1;
        if (wake) {
            int64_t ms = (wake - now + 999999) / 1000000;
            tmo = ms < 0 ? 0 : ms > 60000 ? 60000 : (int)ms;
        }
        int k = poll(pf, (nfds_t)n, tmo);
        if (k < 0 && errno != EINTR) {
            rc = s2_fail(err, S2_EIO, "io", "poll: %s", strerror(errno));
            decide(&rn, CHASSIS_ABORTED, 1);
            reap(&rn, 1);
            goto out;
        }
        if (k <= 0) {
            if (ch->mode == CHASSIS_NONE && rn.pidfd < 0)
                reap(&rn, 0);
            continue;
        }
        if (i_out >= 0 && pf[i_out].revents)
            drain(&rn, &rn.out, 0);
        if (i_err >= 0 && pf[i_err].revents)
            drain(&rn, &rn.err, 1);
        if (i_ctl >= 0 && pf[i_ctl].revents) {
            on_ctl(&rn);
            if (rn.ctl < 0)
                reap(&rn, 1); /* PID 1 closed its end: it has exited */
        }
        if (i_pid >= 0 && pf[i_pid].revents)
            reap(&rn, 1);
        if (i_stop >= 0 && pf[i_stop].revents) {
            stop_seen = 1;
            int64_t g = spec->stop_grace_ms;
            stop_at = clock_mono_ns() + (g > 0 ? g : 0) * 1000000;
            if (g <= 0)
                decide(&rn, CHASSIS_STOPPED, 0);
        }
        if (i_force >= 0 && pf[i_force].revents) {
            force_seen = 1;
            decide(&rn, CHASSIS_STOPPED, 1);
        }
    }
    reap(&rn, 1);
    if (rn.lines.cur.len && spec->on_stderr_line)
        spec->on_stderr_line(spec->ctx, rn.lines.cur.ptr, rn.lines.cur.len);
    if (!rn.decided) {
        if (rn.exit_seen && WIFEXITED(rn.status)) {
            res->end = CHASSIS_EXITED;
            res->exit_code = WEXITSTATUS(rn.status);
        } else if (rn.exit_seen && WIFSIGNALED(rn.status)) {
            res->end = CHASSIS_SIGNALED;
            res->term_signal = WTERMSIG(rn.status);
        } else {
            res->end = CHASSIS_SETUP;
            if (!res->setup_error)
                res->setup_error = xstrdup("the sandbox's init process died before the command "
                                           "ended");
        }
    }
    res->oom = ch->cg.memory && cg_oom(res->cgroup);
out:
    if (res->cgroup) {
        if (rn.pid > 0)
            cg_kill(ch, res->cgroup);
        cg_task_remove(res->cgroup);
    }
    res->run_ns = clock_mono_ns() - rn.t0;
    for (int i = 0; i < 2; i++) {
        if (op[i] >= 0)
            close(op[i]);
        if (ep[i] >= 0)
            close(ep[i]);
    }
    if (in >= 0)
        close(in);
    if (rn.out >= 0)
        close(rn.out);
    if (rn.err >= 0)
        close(rn.err);
    if (rn.ctl >= 0)
        close(rn.ctl);
    if (rn.pidfd >= 0)
        close(rn.pidfd);
    buf_release(&rn.lines.cur);
    if (ch->mode == CHASSIS_STRICT)
        plan_release(&p);
    free(exec_path);
    return rc;
}

char *chassis_describe_end(const struct chassis_result *r, const struct chassis_spec *spec)
{
    switch (r->end) {
    case CHASSIS_EXITED:
        return xasprintf("exit status %d", r->exit_code);
    case CHASSIS_SIGNALED: {
        const char *name = sigabbrev_np(r->term_signal);
        const char *why = "";
        if (r->oom)
            why = ": out of memory (the cgroup's OOM killer)";
        else if (r->term_signal == SIGXCPU)
            why = ": CPU time limit";
        else if (r->term_signal == SIGXFSZ)
            why = ": file size limit";
        return xasprintf("killed by signal %d (SIG%s)%s", r->term_signal, name ? name : "?", why);
    }
    case CHASSIS_TIMEOUT:
        return xasprintf("timed out after %.3g s (the whole process tree was killed)",
                         (double)spec->timeout_ms / 1000);
    case CHASSIS_STOPPED:
        return xstrdup("worker stopping");
    case CHASSIS_ABORTED:
        return xstrdup("aborted by the worker");
    case CHASSIS_SETUP:
        return xasprintf("sandbox setup failed: %s", r->setup_error ? r->setup_error : "unknown");
    }
    return xstrdup("unknown");
}

int chassis_command_visible(const struct chassis *ch, const char *path, struct s2_error *err)
{
    if (ch->mode != CHASSIS_STRICT)
        return 0;
    char *real = realpath(path, NULL);
    const char *p = real ? real : path;
    const char *h = hidden_by(ch, p);
    int exposed = 0;
    for (size_t i = 0; h && i < ch->expose.n; i++) {
        size_t n = strlen(ch->expose.v[i]);
        if (!strncmp(p, ch->expose.v[i], n) && (p[n] == '/' || !p[n]))
            exposed = 1;
    }
    int rc = 0;
    if (h && !exposed) {
        char *dir = xstrdup(p);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir)
            *slash = 0;
        rc = s2_fail(err, S2_EINVAL, "usage",
                     "the command '%s' is under '%s', which the sandbox hides: add "
                     "--expose %s",
                     p, h, dir);
        free(dir);
    }
    free(real);
    return rc;
}

char *chassis_find_command(const char *argv0, char *const *envp, struct s2_error *err)
{
    if (!argv0 || !*argv0) {
        s2_fail(err, S2_EINVAL, "usage", "no command to run");
        return NULL;
    }
    if (strchr(argv0, '/')) {
        char *abs = argv0[0] == '/' ? xstrdup(argv0) : NULL;
        if (!abs) {
            char cwd[4096];
            if (!getcwd(cwd, sizeof cwd)) {
                s2_fail(err, S2_EIO, "io", "getcwd: %s", strerror(errno));
                return NULL;
            }
            abs = xasprintf("%s/%s", cwd, argv0);
        }
        if (access(abs, X_OK)) {
            s2_fail(err, S2_EINVAL, "usage", "cannot run '%s': %s", argv0, strerror(errno));
            free(abs);
            return NULL;
        }
        return abs;
    }
    const char *path = "/usr/local/bin:/usr/bin:/bin";
    for (char *const *e = envp; e && *e; e++)
        if (!strncmp(*e, "PATH=", 5))
            path = *e + 5;
    for (const char *p = path; *p;) {
        const char *c = strchr(p, ':');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n && p[0] == '/') {
            char *cand = xasprintf("%.*s/%s", (int)n, p, argv0);
            struct stat st;
            if (!stat(cand, &st) && S_ISREG(st.st_mode) && !access(cand, X_OK))
                return cand;
            free(cand);
        }
        p += n;
        if (*p == ':')
            p++;
    }
    s2_fail(err, S2_EINVAL, "usage", "command '%s' not found in PATH (%s)", argv0, path);
    return NULL;
}

/* ==== s2 worker --check ==== */

/* Try clone(flags) in a child (as nobody when asked and root); 0 or the errno. */
static int probe_clone(unsigned long flags, int as_nobody)
{
    pid_t pid = fork();
    if (pid < 0)
        return errno;
    if (pid == 0) {
        if (as_nobody && geteuid() == 0 &&
            (setgroups(0, NULL) || setresgid(65534, 65534, 65534) ||
             setresuid(65534, 65534, 65534)))
            _exit(errno & 0xff);
        long c = raw_clone(flags);
        if (c < 0)
            _exit(errno & 0xff ? errno & 0xff : 1);
        if (c == 0)
            _exit(0);
        int st;
        waitpid((pid_t)c, &st, 0);
        _exit(0);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0)
        return errno;
    return WIFEXITED(st) ? WEXITSTATUS(st) : EINTR;
}

static json_t *probe_result(int e)
{
    return e ? json_string(strerror(e)) : json_true();
}

static json_t *read_sysctl(const char *path)
{
    char *v = fs_read_file(path, SMALL_FILE_MAX, 0, NULL);
    if (!v)
        return json_null();
    json_t *j = json_integer(atoll(v));
    free(v);
    return j;
}

json_t *chassis_check(const struct chassis_config *cfg)
{
    json_t *o = json_object();
    struct utsname u;
    if (!uname(&u))
        json_object_set_new(o, "kernel", json_sprintf("%s %s", u.release, u.machine));
    json_object_set_new(o, "root", json_boolean(geteuid() == 0));

    /* user namespaces */
    int e_self = probe_clone(CLONE_NEWUSER, 0);
    int e_nobody = geteuid() == 0 ? probe_clone(CLONE_NEWUSER, 1) : e_self;
    json_t *un = json_object();
    json_object_set_new(un, "available", json_boolean(!e_self));
    json_object_set_new(un, "unprivileged", json_boolean(!e_nobody));
    json_object_set_new(un, "error", e_nobody ? json_string(strerror(e_nobody)) : json_null());
    json_object_set_new(un, "max_user_namespaces",
                        read_sysctl("/proc/sys/user/max_user_namespaces"));
    json_object_set_new(un, "unprivileged_userns_clone",
                        read_sysctl("/proc/sys/kernel/unprivileged_userns_clone"));
    json_object_set_new(un, "apparmor_restrict_unprivileged_userns",
                        read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"));
    json_object_set_new(o, "user_namespaces", un);

    static const struct {
        const char *name;
        unsigned long flag;
    } ns[] = {{"user", 0},
              {"mount", CLONE_NEWNS},
              {"pid", CLONE_NEWPID},
              {"net", CLONE_NEWNET},
              {"ipc", CLONE_NEWIPC},
              {"uts", CLONE_NEWUTS},
              {"cgroup", CLONE_NEWCGROUP}};
    json_t *nsj = json_object();
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        json_object_set_new(nsj, ns[i].name,
                            probe_result(probe_clone(CLONE_NEWUSER | ns[i].flag, 0)));
    json_object_set_new(o, "namespaces", nsj);

    /* seccomp */
    json_t *sc = json_object();
    int mode = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
    const struct scmp_version *v = seccomp_version();
    json_object_set_new(sc, "available", json_boolean(mode >= 0));
    json_object_set_new(sc, "api_level", json_integer(seccomp_api_get()));
    json_object_set_new(sc, "libseccomp", json_sprintf("%u.%u.%u", v->major, v->minor, v->micro));
    size_t nden = 0;
    for (const char *const *n = denied_syscalls; *n; n++)
        nden += seccomp_syscall_resolve_name(*n) != __NR_SCMP_ERROR;
    json_object_set_new(sc, "denied_syscalls", json_integer((json_int_t)nden));
    json_object_set_new(o, "seccomp", sc);

    struct mount_attr ma;
    memset(&ma, 0, sizeof ma);
    int msa = syscall(SYS_mount_setattr, -1, "", 0, &ma, sizeof ma) < 0 && errno == ENOSYS ? 0 : 1;
    json_object_set_new(o, "mount_setattr", json_boolean(msa));
    int pfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    json_object_set_new(o, "pidfd", json_boolean(pfd >= 0));
    if (pfd >= 0)
        close(pfd);

    /* cgroup v2 */
    json_t *cg = json_object();
    char *mnt = cgroup2_mount(), *self = cgroup2_self();
    json_object_set_new(cg, "mounted", json_boolean(mnt != NULL));
    json_object_set_new(cg, "mount", mnt ? json_string(mnt) : json_null());
    json_object_set_new(cg, "cgroup", self ? json_string(self) : json_null());
    free(mnt);
    free(self);
    json_object_set_new(o, "cgroup_v2", cg);

    /* a real strict run, through the same chassis a worker would build */
    json_t *sb = json_object();
    const char *tdir = getenv("TMPDIR");
    char *dir = xasprintf("%s/s2-check-XXXXXX", tdir && *tdir ? tdir : "/tmp");
    struct chassis *ch = NULL;
    struct s2_error err = S2_ERROR_INIT;
    if (!mkdtemp(dir) || chmod(dir, 0711)) {
        json_object_set_new(sb, "strict", json_false());
        json_object_set_new(sb, "error", json_sprintf("mkdtemp: %s", strerror(errno)));
    } else {
        struct chassis_config c = *cfg;
        c.mode = CHASSIS_STRICT;
        c.workdir = dir;
        if (chassis_new(&ch, &c, &err)) {
            json_object_set_new(sb, "strict", json_false());
            json_object_set_new(sb, "error", json_string(err.msg));
        } else {
            char *task = xasprintf("%s/t", dir), *ws = xasprintf("%s/t/ws", dir);
            mkdir(task, 0755);
            mkdir(ws, 0777);
            if (ch->root && chown(ws, CHASSIS_ROOT_MAP_ID, CHASSIS_ROOT_MAP_ID))
                log_debug("check: chown %s: %s", ws, strerror(errno));
            if (log_get_level() <= LOG_DEBUG) {
                struct chassis_spec ps = {.task_dir = task};
                char *plan = chassis_plan_text(ch, &ps);
                json_object_set_new(sb, "plan", json_string(plan));
                free(plan);
            }
            char *argv[] = {"true", NULL};
            char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};
            struct chassis_spec spec = {
                .argv = argv,
                .envp = envp,
                .task_dir = task,
                .timeout_ms = 10000,
                .stop_fd = -1,
                .force_fd = -1,
                .limits = {
                    .memory_bytes = 256LL << 20, .pids = 64, .open_files = 256, .cpu_seconds = 10}};
            struct chassis_result r;
            chassis_result_init(&r);
            if (chassis_run(ch, &spec, &r, &err)) {
                json_object_set_new(sb, "strict", json_false());
                json_object_set_new(sb, "error", json_string(err.msg));
            } else {
                int ok = r.end == CHASSIS_EXITED && r.exit_code == 0;
                json_object_set_new(sb, "strict", json_boolean(ok));
                char *d = chassis_describe_end(&r, &spec);
                json_object_set_new(sb, "error", ok ? json_null() : json_string(d));
                free(d);
                json_object_set_new(sb, "start_ms", json_real((double)r.start_ns / 1e6));
            }
            json_t *notes = json_array();
            for (size_t i = 0; i < r.notes.n; i++)
                json_array_append_new(notes, json_string(r.notes.v[i]));
            json_object_set_new(sb, "notes", notes);
            chassis_result_release(&r);
            rmdir(ws);
            rmdir(task);
            free(task);
            free(ws);
            json_object_set_new(cg, "writable", json_boolean(ch->have_cg));
            json_object_set_new(cg, "memory", json_boolean(ch->have_cg && ch->cg.memory));
            json_object_set_new(cg, "pids", json_boolean(ch->have_cg && ch->cg.pids));
            json_object_set_new(cg, "cpu", json_boolean(ch->have_cg && ch->cg.cpu));
            json_object_set_new(cg, "kill", json_boolean(ch->have_cg && ch->cg.kill));
            char *ctl = NULL;
            if (ch->cg.base) {
                char *p = xasprintf("%s/cgroup.controllers", ch->cg.base);
                ctl = fs_read_file(p, SMALL_FILE_MAX, 0, NULL);
                free(p);
            }
            json_t *list = json_array();
            if (ctl) {
                char *save = NULL;
                for (char *w = strtok_r(ctl, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
                    json_array_append_new(list, json_string(w));
            }
            free(ctl);
            json_object_set_new(cg, "controllers", list);
        }
    }
    s2_error_release(&err);
    if (!json_object_get(cg, "writable")) {
        /* no strict chassis: look at cgroup v2 with a none-mode chassis */
        struct chassis *nch = NULL;
        struct chassis_config c = *cfg;
        c.mode = CHASSIS_NONE;
        c.workdir = dir;
        if (!chassis_new(&nch, &c, &err)) {
            json_object_set_new(cg, "writable", json_boolean(nch->have_cg));
            json_object_set_new(cg, "memory", json_boolean(nch->have_cg && nch->cg.memory));
            json_object_set_new(cg, "pids", json_boolean(nch->have_cg && nch->cg.pids));
            json_object_set_new(cg, "cpu", json_boolean(nch->have_cg && nch->cg.cpu));
            json_object_set_new(cg, "kill", json_boolean(nch->have_cg && nch->cg.kill));
        }
        s2_error_release(&err);
        if (!ch)
            ch = nch;
        else
            chassis_free(nch);
    }
    json_object_set_new(o, "sandbox", sb);

    json_t *task = json_object();
    int strict = json_is_true(json_object_get(sb, "strict"));
    json_object_set_new(task, "isolation",
                        json_string(strict ? "strict" : "none (no user namespaces)"));
    if (ch) {
        json_object_set_new(task, "memory", json_string(chassis_mechanism(ch, "memory")));
        json_object_set_new(task, "pids", json_string(chassis_mechanism(ch, "pids")));
        json_object_set_new(task, "cpu", json_string(chassis_mechanism(ch, "cpu")));
        json_object_set_new(task, "kill", json_string(chassis_mechanism(ch, "kill")));
    }
    json_object_set_new(task, "open_files", json_string("RLIMIT_NOFILE"));
    json_object_set_new(task, "file_size", json_string("RLIMIT_FSIZE"));
    json_object_set_new(task, "network",
                        json_string(strict ? "none (an empty net namespace); granted endpoints "
                                             "through the worker's proxy at 127.0.0.1:3128"
                                           : "the host's (no isolation)"));
    json_object_set_new(task, "user",
                        json_sprintf("uid %d inside, %ld outside", CHASSIS_UID,
                                     geteuid() == 0 ? (long)CHASSIS_ROOT_MAP_ID : (long)getuid()));
    json_object_set_new(o, "task", task);
    chassis_free(ch);
    rmdir(dir);
    free(dir);
    return o;
}
