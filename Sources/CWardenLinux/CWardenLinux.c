// CWardenLinux: see include/CWardenLinux.h for why each function is in C.
#define _GNU_SOURCE
#include "CWardenLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef RESOLVE_NO_MAGICLINKS
#define RESOLVE_NO_MAGICLINKS 0x02
#endif
#ifndef RESOLVE_NO_SYMLINKS
#define RESOLVE_NO_SYMLINKS 0x04
#endif

struct warden_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

int warden_fstatfs_type(int fd, int64_t *type) {
    struct statfs sfs;
    if (fstatfs(fd, &sfs) != 0) return -1;
    *type = (int64_t)sfs.f_type;
    return 0;
}

int64_t warden_tmpfs_magic(void) { return (int64_t)TMPFS_MAGIC; }

int warden_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

int warden_open_nosymlinks(int dirfd, const char *path, int flags) {
    struct warden_open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(flags | O_NOFOLLOW);
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd < 0 && errno == ENOSYS) {
        return openat(dirfd, path, flags | O_NOFOLLOW);
    }
    return (int)fd;
}

long warden_raise_nofile_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    }
    return (long)rl.rlim_cur;
}

long warden_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f) return -1;
    long size = 0, resident = 0;
    int n = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    if (n != 2) return -1;
    return resident * sysconf(_SC_PAGESIZE);
}

#include <sys/fanotify.h>

int warden_fanotify_init(unsigned int flags, unsigned int event_f_flags) {
    return fanotify_init(flags, event_f_flags);
}

int warden_fanotify_mark(int fanotify_fd, unsigned int flags, uint64_t mask, const char *path) {
    return fanotify_mark(fanotify_fd, flags, mask, AT_FDCWD, path);
}

struct warden_fanotify_constants warden_fanotify_constants(void) {
    struct warden_fanotify_constants c = {
        .class_notif = FAN_CLASS_NOTIF,
        .class_content = FAN_CLASS_CONTENT,
        .cloexec = FAN_CLOEXEC,
        .nonblock = FAN_NONBLOCK,
        .unlimited_queue = FAN_UNLIMITED_QUEUE,
        .mark_add = FAN_MARK_ADD,
        .mark_remove = FAN_MARK_REMOVE,
        .mark_mount = FAN_MARK_MOUNT,
        .mark_filesystem = FAN_MARK_FILESYSTEM,
        .close_write = FAN_CLOSE_WRITE,
        .open_exec = FAN_OPEN_EXEC,
        .open_exec_perm = FAN_OPEN_EXEC_PERM,
        .event_on_child = FAN_EVENT_ON_CHILD,
        .q_overflow = FAN_Q_OVERFLOW,
        .ondir = FAN_ONDIR,
        .nofd = FAN_NOFD,
        .metadata_version = FANOTIFY_METADATA_VERSION,
        .allow = FAN_ALLOW,
        .deny = FAN_DENY,
        .event_f_flags = O_RDONLY | O_LARGEFILE | O_CLOEXEC,
    };
    return c;
}

int warden_syncfs(int fd) { return syncfs(fd); }

// Older headers lack these; the numbers are the same on every architecture (the generic table).
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

int warden_pidfd_open(int pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int warden_pidfd_send_signal(int pidfd, int signal) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0);
}

int warden_rename_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, RENAME_NOREPLACE);
}

int warden_set_thread_nice(int nice) {
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
}

int warden_remount_in_namespace(int nsfd, const char *path, unsigned long flags) {
    pid_t child = fork();
    if (child < 0) return -1;
    if (child == 0) {
        if (nsfd >= 0 && setns(nsfd, CLONE_NEWNS) != 0) _exit(errno & 0xff);
        if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | flags, NULL) != 0) _exit(errno & 0xff);
        _exit(0);
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    errno = WIFEXITED(status) ? WEXITSTATUS(status) : ECHILD;
    return -1;
}
