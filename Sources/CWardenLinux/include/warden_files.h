// CWardenLinux: files and file systems.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// statfs(2)'s f_type for the filesystem holding `fd`, in `*type`.
int warden_fstatfs_type(int fd, int64_t *type);

/// The f_type of tmpfs (TMPFS_MAGIC).
int64_t warden_tmpfs_magic(void);

/// eventfd(2) with EFD_CLOEXEC|EFD_NONBLOCK: the sensor thread's stop/wake-up signal.
int warden_eventfd(void);

/// openat2(2) refusing every symlink and magic link on the way (RESOLVE_NO_SYMLINKS |
/// RESOLVE_NO_MAGICLINKS), so a path component swapped for a symlink cannot redirect the open.
/// Falls back to openat(2) with O_NOFOLLOW when the kernel has no openat2 (ENOSYS).
int warden_open_nosymlinks(int dirfd, const char *path, int flags);

/// openat2(2) from `dirfd` following no symlink or magic link, with `dirfd` as the root
/// (`in_root`: RESOLVE_IN_ROOT) or without crossing any mount (RESOLVE_NO_XDEV): the lookup
/// visits exactly the path's own components. No fallback: -1 with ENOSYS on an old kernel.
int warden_open_confined(int dirfd, const char *path, int flags, int in_root);

/// syncfs(2): commits every dirty page and inode of the filesystem holding `fd` in one go.
int warden_syncfs(int fd);

/// renameat2(2) with RENAME_NOREPLACE: fails with EEXIST instead of replacing `newpath`.
int warden_rename_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);

/// memfd_create(2) with MFD_CLOEXEC.
int warden_memfd(const char *name);

/// pipe2(2) with O_CLOEXEC (Swift's Glibc lacks pipe2).
int warden_pipe_cloexec(int fds[2]);
