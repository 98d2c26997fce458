/* fs.h: file tree helpers the worker needs for task directories and worktrees. Both walk
 * without following symbolic links: what a sandboxed command left may point anywhere. */
#ifndef S2_FS_H
#define S2_FS_H

#include <sys/types.h>

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
