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
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>
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

int warden_fanotify_mark_descriptor(int fanotify_fd, unsigned int flags, uint64_t mask, int fd) {
    return fanotify_mark(fanotify_fd, flags, mask, fd, NULL);
}

struct warden_fanotify_constants warden_fanotify_constants(void) {
    struct warden_fanotify_constants c = {
        .class_notif = FAN_CLASS_NOTIF,
        .class_content = FAN_CLASS_CONTENT,
        .cloexec = FAN_CLOEXEC,
        .nonblock = FAN_NONBLOCK,
        .unlimited_queue = FAN_UNLIMITED_QUEUE,
        .unlimited_marks = FAN_UNLIMITED_MARKS,
        .mark_add = FAN_MARK_ADD,
        .mark_remove = FAN_MARK_REMOVE,
        .mark_mount = FAN_MARK_MOUNT,
        .mark_filesystem = FAN_MARK_FILESYSTEM,
        .mark_ignored_mask = FAN_MARK_IGNORED_MASK,
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
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

int warden_pidfd_open(int pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int warden_pidfd_send_signal(int pidfd, int signal) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0);
}

int warden_pidfd_getfd(int pidfd, int fd) { return (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0); }

// PIDFD_GET_INFO (Linux 6.13+), from <linux/pidfd.h> of newer headers than Debian 12 ships: the
// first published struct (PIDFD_INFO_SIZE_VER0, 64 bytes); the kernel takes the size from the
// ioctl number and fills what both sides know.
struct warden_pidfd_info {
    uint64_t mask;
    uint64_t cgroupid;
    uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
    uint32_t spare0[1];
};
#define WARDEN_PIDFD_GET_INFO _IOWR(0xFF, 11, struct warden_pidfd_info)
#define WARDEN_PIDFD_INFO_PID (1ULL << 0)
#define WARDEN_PIDFD_INFO_CREDS (1ULL << 1)

int warden_process_identity(int pid, int *ppid, unsigned int *euid) {
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) return -errno;
    struct warden_pidfd_info info;
    memset(&info, 0, sizeof info);
    info.mask = WARDEN_PIDFD_INFO_PID | WARDEN_PIDFD_INFO_CREDS;
    int result = ioctl(pidfd, WARDEN_PIDFD_GET_INFO, &info);
    int saved = errno;
    close(pidfd);
    if (result < 0) return -saved;
    if ((info.mask & (WARDEN_PIDFD_INFO_PID | WARDEN_PIDFD_INFO_CREDS)) !=
        (WARDEN_PIDFD_INFO_PID | WARDEN_PIDFD_INFO_CREDS))
        return -EINVAL;
    *ppid = (int)info.ppid;
    *euid = info.euid;
    return 0;
}

int warden_current_cpu(void) { return sched_getcpu(); }

int warden_pin_thread(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

int warden_thread_affinity_get(struct warden_cpu_mask *mask) {
    _Static_assert(sizeof(struct warden_cpu_mask) == sizeof(cpu_set_t), "cpu mask size");
    return sched_getaffinity(0, sizeof(cpu_set_t), (cpu_set_t *)mask->bits);
}

int warden_thread_affinity_set(const struct warden_cpu_mask *mask) {
    return sched_setaffinity(0, sizeof(cpu_set_t), (const cpu_set_t *)mask->bits);
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

int warden_private_mount_namespace(void) {
    if (unshare(CLONE_NEWNS) != 0) return -1;
    return mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL);
}

// MARK: - Sandbox launcher (async-signal-safe system calls only below clone)

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <stddef.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <grp.h>
#include <signal.h>

enum {
    SBX_PRIVATE = 1, SBX_ROOT_BIND, SBX_BINDS, SBX_TMP, SBX_PIVOT, SBX_OLDROOT, SBX_PROC, SBX_HOSTNAME,
    SBX_SETSID, SBX_FORK, SBX_STDIO, SBX_RLIMIT, SBX_GROUPS, SBX_GID, SBX_UID, SBX_NNP, SBX_PDEATHSIG,
    SBX_SECCOMP, SBX_NOTIFY, SBX_EXEC, SBX_ROOT_RO, SBX_CGROUP
};

static void sbx_report(int fd, int stage, int error, int kind, int value) {
    struct warden_sandbox_status status = { stage, error, kind, value };
    ssize_t ignored = write(fd, &status, sizeof status);
    (void)ignored;
}

static void sbx_fail(const struct warden_sandbox_spec *spec, int stage) {
    sbx_report(spec->status_fd, stage, errno, 0, 0);
    _exit(127);
}

/// Joins `root` and `path` into `out` (both NUL-terminated, no allocation).
static int sbx_join(char *out, size_t size, const char *root, const char *path) {
    size_t n = 0;
    for (const char *p = root; *p; p++) { if (n + 1 >= size) return -1; out[n++] = *p; }
    for (const char *p = path; *p; p++) { if (n + 1 >= size) return -1; out[n++] = *p; }
    out[n] = 0;
    return 0;
}

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/// Keeps only stdio and the descriptors in `keep` (renumbered from 3 up, in order): nothing of
/// the supervisor's (its database, fanotify groups, sockets) reaches the jail, and the rlimit on
/// open files cannot be exhausted by inherited ones.
static int sbx_keep_only(int *keep, int count) {
    // Park the kept descriptors above every one of them (and above 1000), so parking one never
    // overwrites another that is still to be parked (the agent may hold thousands of files open).
    int base = 1000;
    for (int i = 0; i < count; i++) if (keep[i] >= base) base = keep[i] + 1;
    for (int i = 0; i < count; i++) {
        if (keep[i] < 0) continue;
        if (dup2(keep[i], base + i) < 0) return -1;
    }
    if (syscall(SYS_close_range, 3, base - 1, 0) != 0) return -1;
    if (syscall(SYS_close_range, base + count, ~0U, 0) != 0) return -1;
    for (int i = 0; i < count; i++) {
        if (keep[i] < 0) continue;
        if (dup2(base + i, 3 + i) < 0) return -1;
        close(base + i);
        keep[i] = 3 + i;
    }
    return 0;
}

static void sbx_sample(const struct warden_sandbox_spec *original) {
    struct warden_sandbox_spec copy = *original;
    const struct warden_sandbox_spec *spec = &copy;
    if (dup2(copy.stdout_fd, 1) < 0 || dup2(copy.stderr_fd, 2) < 0) sbx_fail(spec, SBX_STDIO);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) { dup2(null, 0); close(null); }
    int keep[3] = { copy.status_fd, copy.sample_fd, copy.notify_socket };
    if (sbx_keep_only(keep, 3) != 0) sbx_fail(spec, SBX_STDIO);
    copy.status_fd = keep[0];
    copy.sample_fd = keep[1];
    copy.notify_socket = keep[2];
    // The status pipe must not survive the exec: EOF on it then means the sample is running.
    fcntl(copy.status_fd, F_SETFD, FD_CLOEXEC);
    // A fixed, ordinary umask: the supervisor's is the agent's 077, or whatever another of its
    // threads set for a moment (the command line opens its database while the jail starts), and
    // the modes the sample gives its files are part of the report.
    umask(022);
    // Signals as a program started afresh has them. Ignored dispositions and the blocked mask
    // survive exec: the agent ignores SIGHUP, SIGTERM and SIGINT (it takes them through its own
    // signal handling), and a supervisor thread may block some; either would change what the
    // sample does.
    // The raw system calls: glibc's wrappers refuse signals 32 and 33, its own, and something
    // in the supervisor ignores 32.
    struct { void *handler; unsigned long flags; void *restorer; uint64_t mask; } defaults = { SIG_DFL, 0, NULL, 0 };
    for (int signo = 1; signo <= 64; signo++) syscall(SYS_rt_sigaction, signo, &defaults, NULL, sizeof(uint64_t));
    uint64_t none = 0;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof none);
    const int resources[5] = { RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_NPROC };
    for (int i = 0; i < 5; i++) {
        if (setrlimit(resources[i], &spec->limits[i]) != 0) sbx_fail(spec, SBX_RLIMIT);
    }
    // Raw syscalls, not glibc's wrappers: those apply the change to every thread glibc believes
    // the process has (SIGSETXID, then a futex wait), and this child of a raw clone inherited
    // the supervisor's thread list: a thread being created at the time of the clone made the
    // wrapper wait forever. The child is single-threaded, so the syscall alone is complete.
    if (syscall(SYS_setgroups, 0, NULL) != 0) sbx_fail(spec, SBX_GROUPS);
    if (syscall(SYS_setresgid, spec->gid, spec->gid, spec->gid) != 0) sbx_fail(spec, SBX_GID);
    if (syscall(SYS_setresuid, spec->uid, spec->uid, spec->uid) != 0) sbx_fail(spec, SBX_UID);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) sbx_fail(spec, SBX_NNP);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) sbx_fail(spec, SBX_PDEATHSIG);
    // Keep the sample's memory readable to the supervisor (process_vm_readv) after the uid change.
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    // The sample descriptor must survive execveat for scripts (their interpreter opens /dev/fd/N).
    int flags = fcntl(spec->sample_fd, F_GETFD);
    if (flags >= 0) fcntl(spec->sample_fd, F_SETFD, flags & ~FD_CLOEXEC);
    struct sock_fprog program = { spec->filter_length, (struct sock_filter *)spec->filter };
    // FLAG_LOG: refused and killed calls reach the audit log, where the supervisor counts them.
    unsigned int filter_flags = SECCOMP_FILTER_FLAG_LOG | (spec->notify_socket >= 0 ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0);
    long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, filter_flags, &program);
    if (listener < 0) sbx_fail(spec, SBX_SECCOMP);
    if (spec->notify_socket >= 0) {
        char data = 'L';
        struct iovec iov = { &data, 1 };
        union { char buffer[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
        memset(&control, 0, sizeof control);
        struct msghdr message = { 0 };
        message.msg_iov = &iov;
        message.msg_iovlen = 1;
        message.msg_control = control.buffer;
        message.msg_controllen = sizeof control.buffer;
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int));
        int fd = (int)listener;
        memcpy(CMSG_DATA(header), &fd, sizeof fd);
        // The flags the filter leaves this one sendmsg unobserved by: it waits for the listener.
        if (sendmsg(spec->notify_socket, &message, WARDEN_LAUNCHER_SENDMSG_FLAGS) != 1) sbx_fail(spec, SBX_NOTIFY);
        close(fd);
        close(spec->notify_socket);
    }
    // ETXTBSY: another jail (or fork) of the supervisor, cloned while this run's copy was still
    // open for writing, holds that descriptor until its own set-up closes it; exec succeeds then.
    for (int attempt = 0; attempt < 100; attempt++) {
        syscall(SYS_execveat, spec->sample_fd, "", spec->argv, spec->envp, AT_EMPTY_PATH);
        if (errno != ETXTBSY) break;
        struct timespec pause = { 0, 1000000 };
        nanosleep(&pause, NULL);
    }
    sbx_fail(spec, SBX_EXEC);
}

static void sbx_init(const struct warden_sandbox_spec *original) {
    // Only the descriptors the jail needs, from the start: the supervisor's others (its
    // database, its sockets, other runs' identity leases, whose abstract names stay bound while
    // any copy is open) must not stay open here while the jail is set up.
    struct warden_sandbox_spec own = *original;
    const struct warden_sandbox_spec *spec = &own;
    // Into the run's cgroup leaves first: whatever it starts is bounded with it.
    for (int i = 0; i < own.cgroup_count; i++) {
        if (write(own.cgroup_procs[i], "0", 1) != 1) sbx_fail(spec, SBX_CGROUP);
    }
    int needed[5] = { own.status_fd, own.sample_fd, own.notify_socket, own.stdout_fd, own.stderr_fd };
    if (sbx_keep_only(needed, 5) != 0) sbx_fail(spec, SBX_STDIO);
    own.status_fd = needed[0];
    own.sample_fd = needed[1];
    own.notify_socket = needed[2];
    own.stdout_fd = needed[3];
    own.stderr_fd = needed[4];
    char path[4096];
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) sbx_fail(spec, SBX_PRIVATE);
    if (mount(spec->root, spec->root, NULL, MS_BIND | MS_REC, NULL) != 0) sbx_fail(spec, SBX_ROOT_BIND);
    for (int i = 0; i < spec->bind_count; i++) {
        if (sbx_join(path, sizeof path, spec->root, spec->bind_sources[i]) != 0) { errno = ENAMETOOLONG; sbx_fail(spec, SBX_BINDS); }
        if (mount(spec->bind_sources[i], path, NULL, MS_BIND | MS_REC, NULL) != 0) sbx_fail(spec, SBX_BINDS);
        unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | (spec->bind_device[i] ? 0 : MS_NODEV);
        if (mount(NULL, path, NULL, flags, NULL) != 0) sbx_fail(spec, SBX_BINDS);
    }
    if (spec->tmp && (sbx_join(path, sizeof path, spec->root, "/tmp") != 0 ||
                      mount(spec->tmp, path, NULL, MS_BIND, NULL) != 0)) sbx_fail(spec, SBX_TMP);
    if (chdir(spec->root) != 0 || syscall(SYS_pivot_root, ".", ".oldroot") != 0) sbx_fail(spec, SBX_PIVOT);
    if (chdir("/") != 0 || umount2("/.oldroot", MNT_DETACH) != 0) sbx_fail(spec, SBX_OLDROOT);
    rmdir("/.oldroot");
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) sbx_fail(spec, SBX_PROC);
    // Nothing outside /tmp is writable; the sample copy stays executable.
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0) sbx_fail(spec, SBX_ROOT_RO);
    size_t length = 0;
    while (spec->hostname[length]) length++;
    if (sethostname(spec->hostname, length) != 0) sbx_fail(spec, SBX_HOSTNAME);
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s >= 0) {
        struct ifreq request;
        memset(&request, 0, sizeof request);
        memcpy(request.ifr_name, "lo", 3);
        if (ioctl(s, SIOCGIFFLAGS, &request) == 0) {
            request.ifr_flags |= IFF_UP | IFF_RUNNING;
            ioctl(s, SIOCSIFFLAGS, &request);
        }
        close(s);
    }
    if (setsid() < 0) sbx_fail(spec, SBX_SETSID);
    // vfork, not fork(3): glibc's fork takes malloc's locks, which another thread of the
    // supervisor may have held when we were cloned, and a fork copies this process's page
    // tables (the supervisor's, copied once already by the clone that made this init) only for
    // the exec to throw them away. The child shares this memory until its exec: it makes
    // system calls only, changes nothing of this process but its stack below this frame, and
    // never returns here (exec or sbx_fail's _exit); what it sets is its own (descriptors,
    // signal handlers, limits, credentials, filter: no CLONE_FILES, CLONE_SIGHAND or
    // CLONE_THREAD), except the dumpable flag, which belongs to the memory and is set again by
    // the exec. This init waits meanwhile.
    pid_t sample = vfork();
    if (sample < 0) sbx_fail(spec, SBX_FORK);
    if (sample == 0) sbx_sample(spec);
    // The namespace's init: reap everything; the namespace ends when the last process does (or
    // when the supervisor kills this process, which kills every process in it). It keeps only
    // the status pipe.
    int keep[1] = { spec->status_fd };
    struct warden_sandbox_spec copy = *spec;
    if (sbx_keep_only(keep, 1) == 0) copy.status_fd = keep[0];
    spec = &copy;
    // The sample's own end is reported as soon as it is reaped: processes it left behind may
    // run on until the deadline kills this init, and its exit status must not die with it.
    int status = 0;
    for (;;) {
        pid_t ended = waitpid(-1, &status, 0);
        if (ended < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (ended == sample) {
            int exited = WIFEXITED(status);
            sbx_report(spec->status_fd, 0, 0, exited ? 1 : 2, exited ? WEXITSTATUS(status) : WTERMSIG(status));
        }
    }
    _exit(0);
}

int warden_sandbox_spawn(const struct warden_sandbox_spec *spec) {
    long flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP | SIGCHLD;
    long child = syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
    if (child < 0) return -1;
    if (child == 0) {
        // If the supervisor dies, the namespace dies with it.
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        sbx_init(spec);
    }
    return (int)child;
}

int warden_audit_listen(void) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_AUDIT);
    if (fd < 0) return -1;
    // Room for a burst (a fork bomb's refused clones); root may pass rmem_max.
    int size = 8 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
    struct sockaddr_nl address;
    memset(&address, 0, sizeof address);
    address.nl_family = AF_NETLINK;
    address.nl_groups = 1u << (AUDIT_NLGRP_READLOG - 1);
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int warden_audit_sentinel(void) {
    // getppid under a filter that logs it and allows everything else (other architectures:
    // allowed, no record).
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_LOG),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = { sizeof code / sizeof code[0], code };
    // vfork: no copy of the supervisor's page tables, and the parent waits until the child has
    // exited. The child makes raw system calls only and ends with _exit.
    pid_t child = vfork();
    if (child < 0) return -1;
    if (child == 0) {
        // Its copy of the descriptor table would keep the supervisor's sockets (a run's identity
        // lease among them) bound while it lives.
        syscall(SYS_close_range, 3, ~0U, 0);
        if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
            syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) == 0) {
            syscall(SYS_getppid);
        }
        _exit(0);
    }
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    return (int)child;
}

int warden_stop_pid_namespace(int pidns) {
    // Exit codes of the helper: 0 done (or nothing to stop), else the errno of what failed.
    pid_t helper = vfork();
    if (helper < 0) return -1;
    if (helper == 0) {
        // The namespace's descriptor is the only one it needs (see warden_audit_sentinel).
        if (pidns != 3 && syscall(SYS_dup3, pidns, 3, 0) < 0) _exit(errno & 0xff);
        syscall(SYS_close_range, 4, ~0U, 0);
        if (syscall(SYS_setns, 3, CLONE_NEWPID) != 0) _exit(errno & 0xff);
        pid_t stopper = vfork();
        if (stopper < 0) _exit(errno & 0xff);
        if (stopper == 0) {
            // ESRCH: no process but the init (and this one) to signal.
            _exit(syscall(SYS_kill, -1, SIGSTOP) == 0 || errno == ESRCH ? 0 : (errno & 0xff));
        }
        int status = 0;
        while (syscall(SYS_wait4, stopper, &status, 0, NULL) < 0 && errno == EINTR) {}
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : ECHILD);
    }
    int status = 0;
    while (waitpid(helper, &status, 0) < 0 && errno == EINTR) {}
    int failure = WIFEXITED(status) ? WEXITSTATUS(status) : ECHILD;
    if (failure == 0) return 0;
    errno = failure;
    return -1;
}

void warden_namespace_flags(uint64_t out[7]) {
    const uint64_t flags[7] = { CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP };
    for (int i = 0; i < 7; i++) out[i] = flags[i];
}

int warden_memfd(const char *name) { return (int)syscall(SYS_memfd_create, name, 1u /* MFD_CLOEXEC */); }

#include <sys/uio.h>
long warden_read_process_memory(int pid, uint64_t address, void *buffer, size_t length) {
    struct iovec local = { buffer, length };
    struct iovec remote = { (void *)(uintptr_t)address, length };
    return (long)process_vm_readv(pid, &local, 1, &remote, 1, 0);
}

long warden_write_process_memory(int pid, uint64_t address, const void *bytes, size_t length) {
    struct iovec local = { (void *)bytes, length };
    struct iovec remote = { (void *)(uintptr_t)address, length };
    return (long)process_vm_writev(pid, &local, 1, &remote, 1, 0);
}

int warden_receive_fd(int socket) {
    char data;
    struct iovec iov = { &data, 1 };
    union { char buffer[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    struct msghdr message = { 0 };
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control.buffer;
    message.msg_controllen = sizeof control.buffer;
    ssize_t received = recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
    if (received <= 0) { if (received == 0) errno = ECONNRESET; return -1; }
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    if (!header || header->cmsg_type != SCM_RIGHTS) { errno = EPROTO; return -1; }
    int fd;
    memcpy(&fd, CMSG_DATA(header), sizeof fd);
    return fd;
}

long warden_send_now_as(int fd, const void *bytes, size_t length, int pid) {
    struct iovec iov = { (void *)bytes, length };
    union { char buffer[CMSG_SPACE(sizeof(struct ucred))]; struct cmsghdr align; } control;
    struct msghdr message = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buffer,
                              .msg_controllen = sizeof control.buffer };
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_CREDENTIALS;
    header->cmsg_len = CMSG_LEN(sizeof(struct ucred));
    struct ucred credentials = { .pid = pid, .uid = getuid(), .gid = getgid() };
    memcpy(CMSG_DATA(header), &credentials, sizeof credentials);
    return (long)sendmsg(fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
}

int warden_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int warden_accept_cloexec(int fd, int *peer_pid) {
    int connection = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (connection < 0) return -1;
    struct ucred credentials = { 0 };
    socklen_t size = sizeof credentials;
    *peer_pid = getsockopt(connection, SOL_SOCKET, SO_PEERCRED, &credentials, &size) == 0 ? credentials.pid : 0;
    return connection;
}

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS _IOW('!', 4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

int warden_seccomp_sync_wakeup(int listener) {
    return ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
}

int warden_seccomp_add_fd_and_answer(int listener, uint64_t id, int fd, int cloexec) {
    struct seccomp_notif_addfd addfd = {
        .id = id,
        .flags = SECCOMP_ADDFD_FLAG_SEND,
        .srcfd = (uint32_t)fd,
        .newfd = 0,
        .newfd_flags = cloexec ? O_CLOEXEC : 0,
    };
    return ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd);
}

int warden_join_net_namespace(int nsfd) { return setns(nsfd, CLONE_NEWNET); }

int warden_unix_stand_in(int type, int nonblocking, int autobind) {
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0 || !autobind) return fd;
    // Autobind (an address of the family alone): a stand-in the sample "binds" to an IPv4 or IPv6
    // address can then listen, as an unbound unix socket cannot.
    sa_family_t family = AF_UNIX;
    if (bind(fd, (struct sockaddr *)&family, sizeof family) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int warden_unix_stand_in_pair(int type, int nonblocking, int fds[2]) {
    if (socketpair(AF_UNIX, type | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0, fds) != 0) return -1;
    int one = 1;
    if (fcntl(fds[1], F_SETFL, O_NONBLOCK) != 0 || setsockopt(fds[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0) {
        int saved = errno;
        close(fds[0]);
        close(fds[1]);
        errno = saved;
        return -1;
    }
    return 0;
}

long warden_receive_datagram(int fd, void *buffer, size_t size, int *sender_pid) {
    struct iovec part = { .iov_base = buffer, .iov_len = size };
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(struct ucred))];
    } control;
    struct msghdr message = {
        .msg_iov = &part, .msg_iovlen = 1, .msg_control = control.space, .msg_controllen = sizeof control.space,
    };
    ssize_t count = recvmsg(fd, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (count < 0) return -1;
    *sender_pid = 0;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_CREDENTIALS) {
            struct ucred credentials;
            memcpy(&credentials, CMSG_DATA(header), sizeof credentials);
            *sender_pid = credentials.pid;
        }
    }
    return (long)count;
}

int warden_seccomp_replace_fd(int listener, uint64_t id, int fd, int target_fd, int cloexec) {
    struct seccomp_notif_addfd addfd = {
        .id = id,
        .flags = SECCOMP_ADDFD_FLAG_SETFD,
        .srcfd = (uint32_t)fd,
        .newfd = (uint32_t)target_fd,
        .newfd_flags = cloexec ? O_CLOEXEC : 0,
    };
    return ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd);
}
