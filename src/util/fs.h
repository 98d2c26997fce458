/* fs.h: file helpers: reading a whole file, and the tree walks the worker needs for task
 * directories and worktrees (which never follow symbolic links: what a sandboxed command
 * left may point anywhere). */
#ifndef S2_FS_H
#define S2_FS_H

#include <stddef.h>
#include <sys/types.h>

/* Read all of path ("-": standard input) into a NUL-terminated string the caller frees;
 * *len (if given) gets its length. open_flags are added to O_RDONLY | O_CLOEXEC (e.g.
 * O_NOFOLLOW). NULL with errno set on failure, EFBIG when the file is larger than max. */
char *fs_read_file(const char *path, size_t max, int open_flags, size_t *len);

/* Remove name (relative to the directory fd parent) and everything under it, making
 * directories the command left unreadable or unwritable removable first. Failures are
 * logged (warn) with their errno; returns 0, or -1 when something stayed. */
int fs_rm_rf_at(int parent, const char *name);
/* The same for an absolute path. */
int fs_rm_rf(const char *path);
/* Give path and everything under it to uid:gid (symlinks themselves, never their targets).
 * Returns 0, or -1 with errno of the first failure. */
int fs_chown_tree(const char *path, uid_t uid, gid_t gid);

#endif
