/* wasi_host.c: the WASI (wasi_snapshot_preview1) host that `s2 worker --wasm` links with a
 * module translated by wasm2c (module name "s2m"), making one native program per module.
 * It is compiled by the worker at start (inside the sandbox), not into s2 itself, and runs
 * inside the same sandbox as any task command.
 *   module [--dir=GUEST:HOST]... -- ARGV0 ARGS...
 * Each --dir is a preopened directory (GUEST is the name the module sees). stdin, stdout
 * and stderr are fds 0-2; the environment is the process's own. The worker defines
 * S2M_IMPORTS_WASI and S2M_EXPORTS_MEMORY (0 or 1) from what wasm2c made of the module.
 * Never resolve a path outside a preopened directory: every path is resolved beneath its
 * directory (openat2 RESOLVE_BENEATH; without openat2, absolute paths and ".." are refused). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "s2m.h"
#if __has_include("wasm-rt-impl.h")
#include "wasm-rt-impl.h"
#else
extern jmp_buf wasm_rt_jmp_buf;
#define wasm_rt_impl_try()                                                                         \
    (wasm_rt_set_unwind_target(&wasm_rt_jmp_buf), WASM_RT_SETJMP(wasm_rt_jmp_buf))
#endif
extern char **environ;

struct Z_wasi_snapshot_preview1_instance_t {
    wasm_rt_memory_t *mem;
};

typedef struct Z_wasi_snapshot_preview1_instance_t wasi_t;

enum {
    E_SUCCESS = 0,
    E_2BIG = 1,
    E_ACCES = 2,
    E_AGAIN = 6,
    E_BADF = 8,
    E_BUSY = 10,
    E_EXIST = 20,
    E_FAULT = 21,
    E_FBIG = 22,
    E_INTR = 27,
    E_INVAL = 28,
    E_IO = 29,
    E_ISDIR = 31,
    E_LOOP = 32,
    E_MFILE = 33,
    E_MLINK = 34,
    E_NAMETOOLONG = 37,
    E_NFILE = 41,
    E_NOENT = 44,
    E_NOMEM = 48,
    E_NOSPC = 51,
    E_NOSYS = 52,
    E_NOTDIR = 54,
    E_NOTEMPTY = 55,
    E_NOTSUP = 58,
    E_NOTTY = 59,
    E_NXIO = 60,
    E_OVERFLOW = 61,
    E_PERM = 63,
    E_PIPE = 64,
    E_ROFS = 66,
    E_SPIPE = 67,
    E_TXTBSY = 71,
    E_XDEV = 72,
    E_NOTCAPABLE = 76,
};

static uint32_t werr(int e)
{
    switch (e) {
    case 0:
        return E_SUCCESS;
    case E2BIG:
        return E_2BIG;
    case EACCES:
        return E_ACCES;
    case EAGAIN:
        return E_AGAIN;
    case EBADF:
        return E_BADF;
    case EBUSY:
        return E_BUSY;
    case EEXIST:
        return E_EXIST;
    case EFAULT:
        return E_FAULT;
    case EFBIG:
        return E_FBIG;
    case EINTR:
        return E_INTR;
    case EINVAL:
        return E_INVAL;
    case EIO:
        return E_IO;
    case EISDIR:
        return E_ISDIR;
    case ELOOP:
        return E_LOOP;
    case EMFILE:
        return E_MFILE;
    case EMLINK:
        return E_MLINK;
    case ENAMETOOLONG:
        return E_NAMETOOLONG;
    case ENFILE:
        return E_NFILE;
    case ENOENT:
        return E_NOENT;
    case ENOMEM:
        return E_NOMEM;
    case ENOSPC:
        return E_NOSPC;
    case ENOSYS:
        return E_NOSYS;
    case ENOTDIR:
        return E_NOTDIR;
    case ENOTEMPTY:
        return E_NOTEMPTY;
    case EOPNOTSUPP:
        return E_NOTSUP;
    case ENOTTY:
        return E_NOTTY;
    case ENXIO:
        return E_NXIO;
    case EOVERFLOW:
        return E_OVERFLOW;
    case EPERM:
        return E_PERM;
    case EPIPE:
        return E_PIPE;
    case EROFS:
        return E_ROFS;
    case ESPIPE:
        return E_SPIPE;
    case ETXTBSY:
        return E_TXTBSY;
    case EXDEV:
        return E_NOTCAPABLE; /* RESOLVE_BENEATH: the path leads out */
    default:
        return E_IO;
    }
}

/* ---- guest memory ---- */

static wasm_rt_memory_t *MEM;

static int span(uint32_t ptr, uint64_t len)
{
    return (uint64_t)ptr + len <= MEM->size;
}
#define CHECK(ptr, len)                                                                            \
    do {                                                                                           \
        if (!span((ptr), (len)))                                                                   \
            return E_FAULT;                                                                        \
    } while (0)

static void put8(uint32_t p, uint8_t v)
{
    MEM->data[p] = v;
}
static void put16(uint32_t p, uint16_t v)
{
    memcpy(MEM->data + p, &v, 2);
}
static void put32(uint32_t p, uint32_t v)
{
    memcpy(MEM->data + p, &v, 4);
}
static void put64(uint32_t p, uint64_t v)
{
    memcpy(MEM->data + p, &v, 8);
}
static uint32_t get32(uint32_t p)
{
    uint32_t v;
    memcpy(&v, MEM->data + p, 4);
    return v;
}
static uint64_t get64(uint32_t p)
{
    uint64_t v;
    memcpy(&v, MEM->data + p, 8);
    return v;
}

/* ---- the fd table ---- */

#define MAXFD 1024
static struct wfd {
    int used;
    int host;
    int preopen;
    char *name; /* preopen: the guest's name for it */
    int dir;
} fds[MAXFD];

static struct wfd *getfd(uint32_t fd)
{
    return fd < MAXFD && fds[fd].used ? &fds[fd] : NULL;
}

static int newfd(int host, int dir)
{
    for (int i = 3; i < MAXFD; i++)
        if (!fds[i].used) {
            fds[i] = (struct wfd){1, host, 0, NULL, dir};
            return i;
        }
    return -1;
}

/* ---- paths, always beneath their directory ---- */

static int copy_path(uint32_t p, uint32_t len, char **out)
{
    if (!span(p, len))
        return E_FAULT;
    if (len > 4096)
        return E_NAMETOOLONG;
    char *s = malloc(len + 1);
    if (!s)
        return E_NOMEM;
    memcpy(s, MEM->data + p, len);
    s[len] = 0;
    if (strlen(s) != len) {
        free(s);
        return E_INVAL;
    }
    *out = s;
    return 0;
}

static int lexically_inside(const char *path)
{
    if (path[0] == '/')
        return 0;
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return 0;
        p += n;
        while (*p == '/')
            p++;
    }
    return 1;
}

/* openat beneath dirfd; -1 with errno (EXDEV when the path leads out) */
static int open_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    how.mode = (flags & O_CREAT) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd >= 0 || errno != ENOSYS)
        return (int)fd;
    if (!lexically_inside(path)) {
        errno = EXDEV;
        return -1;
    }
    return openat(dirfd, path, flags | O_CLOEXEC, mode);
}

/* Say on stderr that a path was refused for leading out of its directory (the worker shows
 * the command's stderr in a failed task's reason): WASI only returns the errno. */
static void denied(uint32_t fd, const char *path)
{
    struct wfd *f = getfd(fd);
    if (f && f->preopen)
        fprintf(stderr, "wasi: denied: '%s' leads outside the preopened directory '%s'\n", path,
                f->name);
    else
        fprintf(stderr, "wasi: denied: '%s' leads outside directory fd %u\n", path, fd);
}

/* The directory that holds path's last component, beneath dirfd, and that component. */
static uint32_t split_beneath(int dirfd, const char *path, int *pfd, const char **base)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        *pfd = dup(dirfd);
        *base = path;
    } else {
        char *dir = strndup(path, (size_t)(slash - path));
        if (!dir)
            return E_NOMEM;
        *pfd = open_beneath(dirfd, *dir ? dir : ".", O_PATH | O_DIRECTORY, 0);
        free(dir);
        *base = slash + 1;
    }
    if (*pfd < 0)
        return werr(errno);
    if (!**base || !strcmp(*base, "..") || (path[0] == '/')) {
        close(*pfd);
        return !**base ? E_INVAL : E_NOTCAPABLE;
    }
    return 0;
}

static uint8_t ftype(mode_t m)
{
    if (S_ISREG(m))
        return 4;
    if (S_ISDIR(m))
        return 3;
    if (S_ISLNK(m))
        return 7;
    if (S_ISCHR(m))
        return 2;
    if (S_ISBLK(m))
        return 1;
    if (S_ISSOCK(m))
        return 6;
    return 0;
}

static uint64_t ns(struct timespec t)
{
    return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static void put_filestat(uint32_t p, const struct stat *st)
{
    memset(MEM->data + p, 0, 64);
    put64(p, st->st_dev);
    put64(p + 8, st->st_ino);
    put8(p + 16, ftype(st->st_mode));
    put64(p + 24, st->st_nlink);
    put64(p + 32, (uint64_t)st->st_size);
    put64(p + 40, ns(st->st_atim));
    put64(p + 48, ns(st->st_mtim));
    put64(p + 56, ns(st->st_ctim));
}

/* ---- args and environment ---- */

static int g_argc;
static char **g_argv;

static uint32_t strings_sizes(char **v, int n, uint32_t count_p, uint32_t size_p)
{
    CHECK(count_p, 4);
    CHECK(size_p, 4);
    uint64_t total = 0;
    for (int i = 0; i < n; i++)
        total += strlen(v[i]) + 1;
    if (total > UINT32_MAX)
        return E_OVERFLOW;
    put32(count_p, (uint32_t)n);
    put32(size_p, (uint32_t)total);
    return 0;
}

static uint32_t strings_get(char **v, int n, uint32_t ptrs, uint32_t buf)
{
    CHECK(ptrs, (uint64_t)n * 4);
    for (int i = 0; i < n; i++) {
        size_t len = strlen(v[i]) + 1;
        CHECK(buf, len);
        memcpy(MEM->data + buf, v[i], len);
        put32(ptrs + 4 * (uint32_t)i, buf);
        buf += (uint32_t)len;
    }
    return 0;
}

static int env_count(void)
{
    int n = 0;
    while (environ && environ[n])
        n++;
    return n;
}

u32 Z_wasi_snapshot_preview1Z_args_sizes_get(wasi_t *w, u32 c, u32 s)
{
    (void)w;
    return strings_sizes(g_argv, g_argc, c, s);
}
u32 Z_wasi_snapshot_preview1Z_args_get(wasi_t *w, u32 p, u32 b)
{
    (void)w;
    return strings_get(g_argv, g_argc, p, b);
}
u32 Z_wasi_snapshot_preview1Z_environ_sizes_get(wasi_t *w, u32 c, u32 s)
{
    (void)w;
    return strings_sizes(environ, env_count(), c, s);
}
u32 Z_wasi_snapshot_preview1Z_environ_get(wasi_t *w, u32 p, u32 b)
{
    (void)w;
    return strings_get(environ, env_count(), p, b);
}

/* ---- clocks, random, scheduling, exit ---- */

static int clock_of(u32 id, clockid_t *c)
{
    static const clockid_t map[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID,
                                    CLOCK_THREAD_CPUTIME_ID};
    if (id > 3)
        return 0;
    *c = map[id];
    return 1;
}

u32 Z_wasi_snapshot_preview1Z_clock_res_get(wasi_t *w, u32 id, u32 out)
{
    (void)w;
    clockid_t c;
    struct timespec t;
    if (!clock_of(id, &c))
        return E_INVAL;
    CHECK(out, 8);
    if (clock_getres(c, &t))
        return werr(errno);
    put64(out, ns(t));
    return 0;
}

u32 Z_wasi_snapshot_preview1Z_clock_time_get(wasi_t *w, u32 id, u64 precision, u32 out)
{
    (void)w;
    (void)precision;
    clockid_t c;
    struct timespec t;
    if (!clock_of(id, &c))
        return E_INVAL;
    CHECK(out, 8);
    if (clock_gettime(c, &t))
        return werr(errno);
    put64(out, ns(t));
    return 0;
}

u32 Z_wasi_snapshot_preview1Z_random_get(wasi_t *w, u32 buf, u32 len)
{
    (void)w;
    CHECK(buf, len);
    for (u32 done = 0; done < len;) {
        ssize_t r = getrandom(MEM->data + buf + done, len - done, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return werr(errno);
        }
        done += (u32)r;
    }
    return 0;
}

u32 Z_wasi_snapshot_preview1Z_sched_yield(wasi_t *w)
{
    (void)w;
    sched_yield();
    return 0;
}

void Z_wasi_snapshot_preview1Z_proc_exit(wasi_t *w, u32 code)
{
    (void)w;
    _exit((int)(code & 0xff));
}

u32 Z_wasi_snapshot_preview1Z_proc_raise(wasi_t *w, u32 sig)
{
    (void)w;
    (void)sig;
    return E_NOSYS;
}

u32 Z_wasi_snapshot_preview1Z_poll_oneoff(wasi_t *w, u32 in, u32 out, u32 n, u32 nevents)
{
    (void)w;
    if (!n)
        return E_INVAL;
    CHECK(in, (uint64_t)n * 48);
    CHECK(out, (uint64_t)n * 32);
    CHECK(nevents, 4);
    /* clocks: sleep until the earliest; fd subscriptions are reported ready at once */
    uint64_t sleep_ns = UINT64_MAX;
    u32 ready = 0;
    for (u32 i = 0; i < n; i++) {
        u32 s = in + i * 48;
        uint8_t tag = MEM->data[s + 8];
        if (tag == 0) {
            uint64_t timeout = get64(s + 24);
            uint16_t flags;
            memcpy(&flags, MEM->data + s + 40, 2);
            if (flags & 1) { /* absolute */
                clockid_t c;
                struct timespec t;
                if (clock_of(get32(s + 16), &c) && !clock_gettime(c, &t))
                    timeout = timeout > ns(t) ? timeout - ns(t) : 0;
            }
            if (timeout < sleep_ns)
                sleep_ns = timeout;
        } else {
            ready++;
        }
    }
    u32 k = 0;
    if (!ready && sleep_ns != UINT64_MAX) {
        struct timespec t = {(time_t)(sleep_ns / 1000000000ULL), (long)(sleep_ns % 1000000000ULL)};
        while (nanosleep(&t, &t) && errno == EINTR)
            ;
    }
    for (u32 i = 0; i < n; i++) {
        u32 s = in + i * 48;
        uint8_t tag = MEM->data[s + 8];
        if ((tag == 0 && ready) || (tag != 0 && !ready))
            continue;
        u32 e = out + k++ * 32;
        memset(MEM->data + e, 0, 32);
        put64(e, get64(s));
        put8(e + 10, tag);
        if (tag != 0) {
            struct wfd *f = getfd(get32(s + 16));
            put16(e + 8, f ? 0 : E_BADF);
            put64(e + 16, 1);
        }
    }
    put32(nevents, k);
    return 0;
}

/* ---- fds ---- */

static uint32_t iov(u32 iovs, u32 n, struct iovec *v)
{
    if (n > 1024)
        return E_INVAL;
    CHECK(iovs, (uint64_t)n * 8);
    for (u32 i = 0; i < n; i++) {
        u32 p = get32(iovs + 8 * i), len = get32(iovs + 8 * i + 4);
        CHECK(p, len);
        v[i].iov_base = MEM->data + p;
        v[i].iov_len = len;
    }
    return 0;
}

static u32 rw(u32 fd, u32 iovs, u32 n, u32 nout, int write_, int positional, u64 off)
{
    struct wfd *f = getfd(fd);
    if (!f)
        return E_BADF;
    if (f->dir)
        return E_ISDIR;
    struct iovec v[1024];
    u32 e = iov(iovs, n, v);
    if (e)
        return e;
    CHECK(nout, 4);
    ssize_t r;
    do
        r = positional ? (write_ ? pwritev(f->host, v, (int)n, (off_t)off)
                                 : preadv(f->host, v, (int)n, (off_t)off))
                       : (write_ ? writev(f->host, v, (int)n) : readv(f->host, v, (int)n));
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return werr(errno);
    put32(nout, (u32)r);
    return 0;
}

u32 Z_wasi_snapshot_preview1Z_fd_read(wasi_t *w, u32 fd, u32 iovs, u32 n, u32 nread)
{
    (void)w;
    return rw(fd, iovs, n, nread, 0, 0, 0);
}
u32 Z_wasi_snapshot_preview1Z_fd_write(wasi_t *w, u32 fd, u32 iovs, u32 n, u32 nw)
{
    (void)w;
    return rw(fd, iovs, n, nw, 1, 0, 0);
}
u32 Z_wasi_snapshot_preview1Z_fd_pread(wasi_t *w, u32 fd, u32 iovs, u32 n, u64 off, u32 nread)
{
    (void)w;
    return rw(fd, iovs, n, nread, 0, 1, off);
}
u32 Z_wasi_snapshot_preview1Z_fd_pwrite(wasi_t *w, u32 fd, u32 iovs, u32 n, u64 off, u32 nw)
{
    (void)w;
    return rw(fd, iovs, n, nw, 1, 1, off);
}

u32 Z_wasi_snapshot_preview1Z_fd_close(wasi_t *w, u32 fd)
{
    (void)w;
    struct wfd *f = getfd(fd);
    if (!f)
        return E_BADF;
    if (f->preopen)
        return E_NOTSUP;
    if (fd > 2)
        close(f->host);
    memset(f, 0, sizeof *f);
    return 0;
}

u32 Z_wasi_snapshot_preview1Z_fd_seek(wasi_t *w, u32 fd, u64 off, u32 whence, u32 out)
{
    (void)w;
    struct wfd *f = getfd(fd);
    if (!f)
        return E_BADF;
    if (whence > 2)
        return E_INVAL;
    CHECK(out, 8);
    static const int wh[] = {SEEK_SET, SEEK_CUR, SEEK_END};
    off_t r = lseek(f->host, (off_t)off, wh[whence]);
    if (r < 0)
        return werr(errno);
    put64(out, (uint64_t)r);
    return 0;
}

u32 Z_wasi_snapshot_preview1Z_fd_tell(wasi_t *w, u32 fd, u32 out)
{
    return Z_wasi_snapshot_preview1Z_fd_seek(w, fd, 0, 1, out);
}

u32 Z_wasi_snapshot_preview1Z_fd_fdstat_get(wasi_t *w, u32 fd, u32 out)
{
    (void)w;
    struct wfd *f = getfd(fd);
    if (!f)
        return E_BADF;
    CHECK(out, 24);
    struct stat st;
    if (fstat(f->host, &st))
        return werr(errno);
    int fl = fcntl(f->host, F_GETFL);
    memset(MEM->data + out, 0, 24);
    put8(out, ftype(st.st_mode));
    put16(out + 2, (uint16_t)((fl >= 0 && (fl & O_APPEND) ? 1 : 0) |
                              (fl >= 0 && (fl & O_NONBLOCK) ? 4 : 0)));
    put64(out + 8, ~0ULL);
    put64(out + 16, ~0ULL);
    return 0;
}

u32 Z_wasi_snapshot_preview1Z_fd_fdstat_set_flags(wasi_t *w, u32 fd, u32 flags)
{
    (void)w;
    struct wfd *f = getfd(fd);
    if (!f)
        return E_BADF;
    int fl = fcntl(f->host, F_GETFL);
    if (fl < 0)
        return werr(errno);
    fl =
        (fl & ~(O_APPEND | O_NONBLOCK)) | (flags & 1 ? O_APPEND : 0) | (flags & 4 ? O_NONBLOCK : 0);
    return fcntl(f->host, F_SETFL, fl) ? werr(errno) : 0;
}

u32 Z_wasi_snapshot_preview1Z_fd_fdstat_set_rights(wasi_t *w, u32 fd, u64 base, u64 inh)
{
    (void)w;
    (void)base;
    (void)inh;
    return getfd(fd) ? 0 : E_BADF;
}

u32 Z_wasi_snapshot_preview1Z_fd_filestat_get(wasi_t *w, u32 fd, u32 out)
{
    (void)w;
    struct wfd *f = getfd(fd);
    if (!f)
        return E_BADF;
    CHECK(out, 64);
    struct stat st;
    if (fstat(f->host, &st))
        return werr(errno);
    put_filestat(out, &st);
    return 0;
}

u32 Z_wasi_snapshot_preview1Z_fd_filestat_set_size(wasi_t *w, u32 fd, u64 size)
{
    (void)w;
    struct wfd *f = getfd(fd);
    if (!f)
        return E_BADF;
    return ftruncate(f->host, (off_t)size) ? werr(errno) : 0;
}

static int times_of(u64 atim, u64 mtim, u32 fl, struct timespec t[2])
{
    t[0].tv_nsec = fl & 2 ? UTIME_NOW : fl & 1 ? 0 : UTIME_OMIT;
    t[1].tv_nsec = fl & 8 ? UTIME_NOW : fl & 4 ? 0 : UTIME_OMIT;
    t[0].tv_sec = t[1].tv_sec = 0;
    if ((fl & 3) == 1)
        t[0] = (struct timespec){(time_t)(atim / 1000000000ULL), (long)(atim % 1000000000ULL)};
    if ((fl & 12) == 4)
        t[1] = (struct timespec){(time_t)(mtim / 1000000000ULL), (long)(mtim % 1000000000ULL)};
    return (fl & 3) == 3 || (fl & 12) == 12 ? -1 : 0;
}

u32 Z_wasi_snapshot_preview1Z_fd_filestat_set_times(wasi_t *w, u32 fd, u64 a, u64 m, u32 fl)
{
    (void)w;
    struct wfd *f = getfd(fd);
    struct timespec t[2];
    if (!f)
        return E_BADF;
    if (times_of(a, m, fl, t))
        return E_INVAL;
    return futimens(f->host, t) ? werr(errno) : 0;
}

u32 Z_wasi_snapshot_preview1Z_fd_sync(wasi_t *w, u32 fd)
{
    (void)w;
    struct wfd *f = getfd(fd);
    return !f ? E_BADF : fsync(f->host) ? werr(errno) : 0;
}
u32 Z_wasi_snapshot_preview1Z_fd_datasync(wasi_t *w, u32 fd)
{
    (void)w;
    struct wfd *f = getfd(fd);
    return !f ? E_BADF : fdatasync(f->host) ? werr(errno) : 0;
}
u32 Z_wasi_snapshot_preview1Z_fd_advise(wasi_t *w, u32 fd, u64 off, u64 len, u32 advice)
{
    (void)w;
    (void)off;
    (void)len;
    (void)advice;
    return getfd(fd) ? 0 : E_BADF;
}
u32 Z_wasi_snapshot_preview1Z_fd_allocate(wasi_t *w, u32 fd, u64 off, u64 len)
{
    (void)w;
    struct wfd *f = getfd(fd);
    if (!f)
        return E_BADF;
    int e = posix_fallocate(f->host, (off_t)off, (off_t)len);
    return e ? werr(e) : 0;
}

u32 Z_wasi_snapshot_preview1Z_fd_renumber(wasi_t *w, u32 from, u32 to)
{
    (void)w;
    struct wfd *a = getfd(from), *b = getfd(to);
    if (!a || !b)
        return E_BADF;
    if (a->preopen || b->preopen)
        return E_NOTSUP;
    if (from == to)
        return 0;
    if (to > 2)
        close(b->host);
    *b = *a;
    memset(a, 0, sizeof *a);
    return 0;
}

u32 Z_wasi_snapshot_preview1Z_fd_prestat_get(wasi_t *w, u32 fd, u32 out)
{
    (void)w;
    struct wfd *f = getfd(fd);
    if (!f || !f->preopen)
        return E_BADF;
    CHECK(out, 8);
    memset(MEM->data + out, 0, 8);
    put32(out + 4, (u32)strlen(f->name));
    return 0;
}

u32 Z_wasi_snapshot_preview1Z_fd_prestat_dir_name(wasi_t *w, u32 fd, u32 path, u32 len)
{
    (void)w;
    struct wfd *f = getfd(fd);
    if (!f || !f->preopen)
        return E_BADF;
    size_t n = strlen(f->name);
    if (len < n)
        return E_NAMETOOLONG;
    CHECK(path, n);
    memcpy(MEM->data + path, f->name, n);
    return 0;
}

u32 Z_wasi_snapshot_preview1Z_fd_readdir(wasi_t *w, u32 fd, u32 buf, u32 len, u64 cookie, u32 used)
{
    (void)w;
    struct wfd *f = getfd(fd);
    if (!f)
        return E_BADF;
    if (!f->dir)
        return E_NOTDIR;
    CHECK(buf, len);
    CHECK(used, 4);
    if (lseek(f->host, (off_t)cookie, SEEK_SET) < 0)
        return werr(errno);
    char tmp[8192];
    u32 pos = 0;
    for (;;) {
        long n = syscall(SYS_getdents64, f->host, tmp, sizeof tmp);
        if (n < 0)
            return werr(errno);
        if (n == 0)
            break;
        for (long off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(tmp + off);
            size_t nl = strlen(d->d_name);
            unsigned char h[24];
            uint64_t next = (uint64_t)d->d_off, ino = d->d_ino;
            uint32_t namlen = (uint32_t)nl;
            memset(h, 0, sizeof h);
            memcpy(h, &next, 8);
            memcpy(h + 8, &ino, 8);
            memcpy(h + 16, &namlen, 4);
            h[20] = d->d_type == DT_DIR ? 3 : d->d_type == DT_REG ? 4 : d->d_type == DT_LNK ? 7 : 0;
            for (size_t i = 0; i < 24 + nl && pos < len; i++, pos++)
                MEM->data[buf + pos] = i < 24 ? h[i] : (unsigned char)d->d_name[i - 24];
            if (pos >= len) {
                put32(used, len);
                return 0;
            }
            off += d->d_reclen;
        }
    }
    put32(used, pos);
    return 0;
}

u32 Z_wasi_snapshot_preview1Z_path_open(wasi_t *w, u32 dirfd, u32 lookup, u32 path, u32 plen,
                                        u32 oflags, u64 rights, u64 inh, u32 fdflags, u32 out)
{
    (void)w;
    (void)inh;
    struct wfd *d = getfd(dirfd);
    if (!d || !d->dir)
        return E_BADF;
    CHECK(out, 4);
    char *p;
    u32 e = copy_path(path, plen, &p);
    if (e)
        return e;
    const uint64_t R = (1 << 1) | (1 << 14), W = (1 << 6) | (1 << 20) | (1 << 22);
    int rd = (rights & R) != 0, wr = (rights & W) != 0;
    int fl = wr ? (rd ? O_RDWR : O_WRONLY) : O_RDONLY;
    if (oflags & 1)
        fl |= O_CREAT;
    if (oflags & 2)
        fl = O_RDONLY | O_DIRECTORY;
    if (oflags & 4)
        fl |= O_EXCL;
    if (oflags & 8)
        fl |= O_TRUNC;
    if (fdflags & 1)
        fl |= O_APPEND;
    if (fdflags & 4)
        fl |= O_NONBLOCK;
    if (!(lookup & 1))
        fl |= O_NOFOLLOW;
    int h = open_beneath(d->host, p, fl, 0644);
    if (h < 0 && errno == EISDIR && !(oflags & 2))
        h = open_beneath(d->host, p, O_RDONLY | O_DIRECTORY, 0);
    if (h < 0 && errno == EXDEV)
        denied(dirfd, p);
    free(p);
    if (h < 0)
        return werr(errno);
    struct stat st;
    int isdir = !fstat(h, &st) && S_ISDIR(st.st_mode);
    int nf = newfd(h, isdir);
    if (nf < 0) {
        close(h);
        return E_MFILE;
    }
    put32(out, (u32)nf);
    return 0;
}

/* Run op on (parent dir fd, last component) of a path beneath dirfd. */
#define WITH_PATH(dirfd, path, plen, BODY)                                                         \
    struct wfd *d_ = getfd(dirfd);                                                                 \
    if (!d_ || !d_->dir)                                                                           \
        return E_BADF;                                                                             \
    char *p_;                                                                                      \
    u32 e_ = copy_path(path, plen, &p_);                                                           \
    if (e_)                                                                                        \
        return e_;                                                                                 \
    int pfd;                                                                                       \
    const char *base;                                                                              \
    e_ = split_beneath(d_->host, p_, &pfd, &base);                                                 \
    if (e_ == E_NOTCAPABLE)                                                                        \
        denied(dirfd, p_);                                                                         \
    if (!e_) {                                                                                     \
        BODY;                                                                                      \
        close(pfd);                                                                                \
    }                                                                                              \
    free(p_);                                                                                      \
    return e_;

u32 Z_wasi_snapshot_preview1Z_path_create_directory(wasi_t *w, u32 fd, u32 path, u32 plen)
{
    (void)w;
    WITH_PATH(fd, path, plen, e_ = mkdirat(pfd, base, 0755) ? werr(errno) : 0)
}

u32 Z_wasi_snapshot_preview1Z_path_remove_directory(wasi_t *w, u32 fd, u32 path, u32 plen)
{
    (void)w;
    WITH_PATH(fd, path, plen, e_ = unlinkat(pfd, base, AT_REMOVEDIR) ? werr(errno) : 0)
}

u32 Z_wasi_snapshot_preview1Z_path_unlink_file(wasi_t *w, u32 fd, u32 path, u32 plen)
{
    (void)w;
    WITH_PATH(fd, path, plen, e_ = unlinkat(pfd, base, 0) ? werr(errno) : 0)
}

u32 Z_wasi_snapshot_preview1Z_path_filestat_get(wasi_t *w, u32 fd, u32 lookup, u32 path, u32 plen,
                                                u32 out)
{
    (void)w;
    if (!span(out, 64))
        return E_FAULT;
    struct stat st;
    WITH_PATH(fd, path, plen, {
        int h = open_beneath(pfd, base, O_PATH | (lookup & 1 ? 0 : O_NOFOLLOW), 0);
        if (h < 0 || fstat(h, &st))
            e_ = werr(errno);
        else
            put_filestat(out, &st);
        if (h >= 0)
            close(h);
    })
}

u32 Z_wasi_snapshot_preview1Z_path_filestat_set_times(wasi_t *w, u32 fd, u32 lookup, u32 path,
                                                      u32 plen, u64 a, u64 m, u32 fl)
{
    (void)w;
    struct timespec t[2];
    if (times_of(a, m, fl, t))
        return E_INVAL;
    WITH_PATH(fd, path, plen,
              e_ = utimensat(pfd, base, t, lookup & 1 ? 0 : AT_SYMLINK_NOFOLLOW) ? werr(errno) : 0)
}

u32 Z_wasi_snapshot_preview1Z_path_readlink(wasi_t *w, u32 fd, u32 path, u32 plen, u32 buf, u32 len,
                                            u32 used)
{
    (void)w;
    if (!span(buf, len) || !span(used, 4))
        return E_FAULT;
    WITH_PATH(fd, path, plen, {
        ssize_t r = readlinkat(pfd, base, (char *)MEM->data + buf, len);
        if (r < 0)
            e_ = werr(errno);
        else
            put32(used, (u32)r);
    })
}

u32 Z_wasi_snapshot_preview1Z_path_symlink(wasi_t *w, u32 old, u32 olen, u32 fd, u32 path, u32 plen)
{
    (void)w;
    char *target;
    u32 e = copy_path(old, olen, &target);
    if (e)
        return e;
    if (!lexically_inside(target)) { /* a link that leads out is refused, even unused */
        denied(fd, target);
        free(target);
        return E_NOTCAPABLE;
    }
    struct wfd *d_ = getfd(fd);
    if (!d_ || !d_->dir) {
        free(target);
        return E_BADF;
    }
    char *p_;
    e = copy_path(path, plen, &p_);
    if (!e) {
        int pfd;
        const char *base;
        e = split_beneath(d_->host, p_, &pfd, &base);
        if (!e) {
            e = symlinkat(target, pfd, base) ? werr(errno) : 0;
            close(pfd);
        }
        free(p_);
    }
    free(target);
    return e;
}

static u32 two_paths(u32 ofd, u32 opath, u32 olen, u32 nfd, u32 npath, u32 nlen, int link)
{
    struct wfd *a = getfd(ofd), *b = getfd(nfd);
    if (!a || !b || !a->dir || !b->dir)
        return E_BADF;
    char *op = NULL, *np = NULL;
    u32 e = copy_path(opath, olen, &op);
    if (!e)
        e = copy_path(npath, nlen, &np);
    int pa = -1, pb = -1;
    const char *ba, *bb;
    if (!e && (e = split_beneath(a->host, op, &pa, &ba)) == E_NOTCAPABLE)
        denied(ofd, op);
    if (!e && (e = split_beneath(b->host, np, &pb, &bb)) == E_NOTCAPABLE)
        denied(nfd, np);
    if (!e)
        e = (link ? linkat(pa, ba, pb, bb, 0) : renameat(pa, ba, pb, bb)) ? werr(errno) : 0;
    if (pa >= 0)
        close(pa);
    if (pb >= 0)
        close(pb);
    free(op);
    free(np);
    return e;
}

u32 Z_wasi_snapshot_preview1Z_path_rename(wasi_t *w, u32 fd, u32 op, u32 ol, u32 nfd, u32 np,
                                          u32 nl)
{
    (void)w;
    return two_paths(fd, op, ol, nfd, np, nl, 0);
}

u32 Z_wasi_snapshot_preview1Z_path_link(wasi_t *w, u32 fd, u32 flags, u32 op, u32 ol, u32 nfd,
                                        u32 np, u32 nl)
{
    (void)w;
    (void)flags;
    return two_paths(fd, op, ol, nfd, np, nl, 1);
}

/* ---- sockets: a sandboxed task has none ---- */

u32 Z_wasi_snapshot_preview1Z_sock_accept(wasi_t *w, u32 fd, u32 flags, u32 out)
{
    (void)w, (void)fd, (void)flags, (void)out;
    return E_NOTSUP;
}
u32 Z_wasi_snapshot_preview1Z_sock_recv(wasi_t *w, u32 fd, u32 a, u32 b, u32 c, u32 d, u32 e)
{
    (void)w, (void)fd, (void)a, (void)b, (void)c, (void)d, (void)e;
    return E_NOTSUP;
}
u32 Z_wasi_snapshot_preview1Z_sock_send(wasi_t *w, u32 fd, u32 a, u32 b, u32 c, u32 d)
{
    (void)w, (void)fd, (void)a, (void)b, (void)c, (void)d;
    return E_NOTSUP;
}
u32 Z_wasi_snapshot_preview1Z_sock_shutdown(wasi_t *w, u32 fd, u32 how)
{
    (void)w, (void)fd, (void)how;
    return E_NOTSUP;
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    int i = 1, next = 3;
    for (int k = 0; k < 3; k++)
        fds[k] = (struct wfd){1, k, 0, NULL, 0};
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        const char *a = argv[i];
        const char *colon = strncmp(a, "--dir=", 6) ? NULL : strchr(a + 6, ':');
        if (!colon) {
            fprintf(stderr, "wasi: usage: %s [--dir=GUEST:HOST]... -- ARGV0 ARGS...\n", argv[0]);
            return 125;
        }
        int h = open(colon + 1, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (h < 0) {
            fprintf(stderr, "wasi: cannot open directory '%s': %s\n", colon + 1, strerror(errno));
            return 125;
        }
        fds[next] = (struct wfd){1, h, 1, strndup(a + 6, (size_t)(colon - (a + 6))), 1};
        next++;
    }
    if (i >= argc - 1) {
        fprintf(stderr, "wasi: no argv0 after --\n");
        return 125;
    }
    g_argc = argc - i - 1;
    g_argv = argv + i + 1;
    wasm_rt_init();
    Z_s2m_init_module();
    static Z_s2m_instance_t inst;
    static wasi_t wasi;
#if S2M_IMPORTS_WASI
    Z_s2m_instantiate(&inst, &wasi);
#else
    Z_s2m_instantiate(&inst);
#endif
#if S2M_EXPORTS_MEMORY
    wasi.mem = MEM = Z_s2mZ_memory(&inst);
#else
    static wasm_rt_memory_t none; /* every call that passes a pointer gets E_FAULT */
    wasi.mem = MEM = &none;
#endif
    int trap = wasm_rt_impl_try();
    if (trap) {
        fprintf(stderr, "wasi: the module trapped: %s\n", wasm_rt_strerror((wasm_rt_trap_t)trap));
        return 134;
    }
    Z_s2mZ__start(&inst);
    return 0;
}
