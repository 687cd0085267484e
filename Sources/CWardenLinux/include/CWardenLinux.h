// CWardenLinux: the only hand-written C in shmwarden.
//
// Only what Swift cannot call itself lives here: headers the Glibc module leaves out
// (<sys/vfs.h>, <sys/eventfd.h>, <linux/openat2.h>), variadic calls (syscall), and constants
// that older headers lack. Every function returns 0 (or a descriptor) on success and -1 with
// errno set on failure, so one Swift helper can wrap them all.
#pragma once

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

/// Raises RLIMIT_NOFILE's soft limit to its hard limit; returns the new soft limit or -1.
long warden_raise_nofile_limit(void);

/// The process's resident set size in bytes, read from /proc/self/statm; -1 on failure.
long warden_rss_bytes(void);
