/* fs.c: see fs.h. Never follow a symbolic link out of the tree being walked. */
#include "util/fs.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *fs_read_file(const char *path, size_t max, int open_flags, size_t *len)
{
    int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC | open_flags) : STDIN_FILENO;
    if (fd < 0)
        return NULL;
    struct buf b = BUF_INIT;
    buf_init(&b, max);
    char chunk[65536];
    ssize_t n;
    int e = 0;
    for (;;) {
        n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            e = errno;
        else if (n > 0 && buf_add(&b, chunk, (size_t)n))
            e = EFBIG;
        if (n <= 0 || e)
            break;
    }
    if (fd != STDIN_FILENO)
        close(fd);
    if (e) {
        buf_release(&b);
        errno = e;
        return NULL;
    }
    return buf_detach(&b, len);
}

int fs_rm_rf_at(int parent, const char *name)
{
    int rc = 0;
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == EACCES && !fchmodat(parent, name, 0700, 0))
        fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        if (fchmod(fd, 0700)) /* the command may have left it unwritable */
            log_debug("chmod '%s': %s", name, strerror(errno));
        DIR *d = fdopendir(fd);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                    rc |= fs_rm_rf_at(dirfd(d), de->d_name);
            closedir(d);
        } else {
            close(fd);
        }
        if (unlinkat(parent, name, AT_REMOVEDIR) && errno != ENOENT) {
            log_warn("cannot remove '%s': %s", name, strerror(errno));
            rc = -1;
        }
        return rc;
    }
    if (unlinkat(parent, name, 0) && errno != ENOENT) {
        log_warn("cannot remove '%s': %s", name, strerror(errno));
        return -1;
    }
    return 0;
}

int fs_rm_rf(const char *path)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    int rc = -1;
    if (slash && slash[1]) {
        *slash = 0;
        int pfd = open(slash == dir ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd >= 0) {
            rc = fs_rm_rf_at(pfd, slash + 1);
            close(pfd);
        } else if (errno == ENOENT) {
            rc = 0;
        } else {
            log_warn("cannot remove '%s': %s", path, strerror(errno));
        }
    }
    free(dir);
    return rc;
}

static int chown_at(int parent, const char *name, uid_t uid, gid_t gid, int depth)
{
    if (fchownat(parent, name, uid, gid, AT_SYMLINK_NOFOLLOW))
        return -1;
    struct stat st;
    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW))
        return -1;
    if (!S_ISDIR(st.st_mode))
        return 0;
    if (depth > 256) {
        errno = ELOOP;
        return -1;
    }
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            rc = chown_at(dirfd(d), de->d_name, uid, gid, depth + 1);
    int e = errno;
    closedir(d);
    errno = e;
    return rc;
}

int fs_chown_tree(const char *path, uid_t uid, gid_t gid)
{
    return chown_at(AT_FDCWD, path, uid, gid, 0);
}
