// CWardenLinux: the sandbox launcher. Only async-signal-safe system calls run below clone.
#include "internal.h"

#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

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
