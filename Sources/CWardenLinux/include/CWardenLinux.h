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

/// fanotify_init(2). Not imported by Swift's Glibc module.
int warden_fanotify_init(unsigned int flags, unsigned int event_f_flags);

/// fanotify_mark(2) on `path` (relative to AT_FDCWD).
int warden_fanotify_mark(int fanotify_fd, unsigned int flags, uint64_t mask, const char *path);

/// The fanotify constants shmwarden uses, from <sys/fanotify.h>.
struct warden_fanotify_constants {
    unsigned int class_notif, class_content, cloexec, nonblock, unlimited_queue;
    unsigned int mark_add, mark_remove, mark_mount, mark_filesystem;
    uint64_t close_write, open_exec, open_exec_perm, event_on_child, q_overflow, ondir;
    int nofd;
    unsigned int metadata_version;
    unsigned int allow, deny;
    /// O_RDONLY | O_LARGEFILE | O_CLOEXEC, the flags for event descriptors.
    unsigned int event_f_flags;
};
struct warden_fanotify_constants warden_fanotify_constants(void);

/// syncfs(2): commits every dirty page and inode of the filesystem holding `fd` in one go.
int warden_syncfs(int fd);

/// pidfd_open(2): a descriptor that names one process for as long as it is held, immune to pid
/// reuse. Not wrapped by Debian 12's glibc.
int warden_pidfd_open(int pid);

/// pidfd_send_signal(2) with no siginfo: fails with ESRCH once the process is gone, so it never
/// signals a process that merely reuses the pid.
int warden_pidfd_send_signal(int pidfd, int signal);

/// renameat2(2) with RENAME_NOREPLACE: fails with EEXIST instead of replacing `newpath`.
int warden_rename_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);

/// setpriority(2) on the calling thread (its tid): Linux nice values are per thread.
int warden_set_thread_nice(int nice);

/// Changes the per-mount flags of the mount at `path` (mount(2) with MS_REMOUNT | MS_BIND |
/// `flags`) inside the mount namespace `nsfd` (an open /proc/PID/ns/mnt), or in ours when
/// `nsfd` is -1. A multithreaded process cannot setns(2) into a mount namespace, so a child is
/// forked that runs only setns, mount and _exit (all async-signal-safe) and reports errno as its
/// exit status.
int warden_remount_in_namespace(int nsfd, const char *path, unsigned long flags);
