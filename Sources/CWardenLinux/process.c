// CWardenLinux: processes, pidfds, process memory and pid/net namespaces.
#include "internal.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>

long warden_raise_nofile_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    }
    return (long)rl.rlim_cur;
}

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

int warden_set_thread_nice(int nice) {
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
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

int warden_join_net_namespace(int nsfd) { return setns(nsfd, CLONE_NEWNET); }
