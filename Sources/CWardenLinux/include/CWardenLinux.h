// CWardenLinux: the kernel-facing C of shmwarden (the SQLite VFS is CWardenSQLite).
//
// Only what Swift cannot call itself lives here: headers the Glibc module leaves out
// (<sys/vfs.h>, <sys/eventfd.h>, <linux/openat2.h>), variadic calls (syscall), constants
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

/// fanotify_mark(2) on the file `fd` is open on (dirfd = fd, pathname = NULL).
int warden_fanotify_mark_descriptor(int fanotify_fd, unsigned int flags, uint64_t mask, int fd);

/// The fanotify constants shmwarden uses, from <sys/fanotify.h>.
struct warden_fanotify_constants {
    unsigned int class_notif, class_content, cloexec, nonblock, unlimited_queue, unlimited_marks;
    unsigned int mark_add, mark_remove, mark_mount, mark_filesystem, mark_ignored_mask;
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

/// pidfd_getfd(2): a copy of descriptor `fd` of the process `pidfd` refers to (close-on-exec).
int warden_pidfd_getfd(int pidfd, int fd);

/// sendmsg(2) of `length` bytes on unix socket `fd` without waiting, no SIGPIPE, with
/// SCM_CREDENTIALS naming process `pid` as the sender (CAP_SYS_ADMIN): what the receiver's
/// SO_PASSCRED sees is the process the message is sent for.
long warden_send_now_as(int fd, const void *bytes, size_t length, int pid);

/// The parent pid and effective uid of `pid`, from one `PIDFD_GET_INFO` ioctl on a pidfd
/// (Linux 6.13+; a zombie not yet reaped still answers). 0, or -errno: -ESRCH when the process
/// is gone, -ENOTTY or -EINVAL on a kernel without the ioctl.
int warden_process_identity(int pid, int *ppid, unsigned int *euid);

/// sched_getcpu(3): the CPU the calling thread runs on now.
int warden_current_cpu(void);

/// A `cpu_set_t`, opaque to Swift (its CPU_* macros do not import).
struct warden_cpu_mask {
    unsigned long bits[1024 / (8 * sizeof(unsigned long))];
};

/// sched_setaffinity(2) of the calling thread to `cpu` alone.
int warden_pin_thread(int cpu);

/// sched_getaffinity(2) / sched_setaffinity(2) of the calling thread.
int warden_thread_affinity_get(struct warden_cpu_mask *mask);
int warden_thread_affinity_set(const struct warden_cpu_mask *mask);

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

/// Gives the calling thread a mount namespace of its own (unshare(CLONE_NEWNS), which also
/// unshares its root and working directory) whose mounts are slaves of the ones it copied: host
/// mounts and unmounts still reach it, nothing mounted in it reaches the host. Everything mounted
/// in it goes away with the last thread or process in it, however they end. 0 or -1 (errno).
int warden_private_mount_namespace(void);

// MARK: - Sandbox launcher

#include <sys/resource.h>

/// What `warden_sandbox_spawn` sets up. Every pointer must stay valid until it returns.
struct warden_sandbox_spec {
    /// The jail's root: a tmpfs the supervisor prepared (directories, the sample copy).
    const char *root;
    /// A writable tmpfs bound at /tmp in the jail; NULL when one is already mounted at
    /// `root`/tmp (the recursive bind of `root` carries it into the jail).
    const char *tmp;
    /// Host paths bound read-only at the same paths below `root` (`bind_device[i]`: a device
    /// node, bound without nodev).
    const char *const *bind_sources;
    const int *bind_device;
    int bind_count;
    /// The sample, opened read-only: executed with execveat(AT_EMPTY_PATH).
    int sample_fd;
    const char *const *argv;
    const char *const *envp;
    uid_t uid;
    gid_t gid;
    /// RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_NPROC, in that order.
    struct rlimit limits[5];
    /// The exported seccomp BPF (struct sock_filter array) and its length in instructions.
    const void *filter;
    unsigned short filter_length;
    /// A unix socket to send the seccomp listener descriptor over (SCM_RIGHTS), or -1 for no
    /// user notification.
    int notify_socket;
    int stdout_fd, stderr_fd;
    /// Receives `struct warden_sandbox_status` records: a setup failure, or the sample's end.
    int status_fd;
    const char *hostname;
    /// Open `cgroup.procs` files of the run's cgroup leaves: the jail's first process writes
    /// itself into each before anything else, so every process of the run is inside.
    const int *cgroup_procs;
    int cgroup_count;
};

/// One record on the status pipe.
struct warden_sandbox_status {
    /// 0: the sample ended (kind/value say how); else the setup stage that failed.
    int32_t stage;
    int32_t error;
    /// 1: exited with `value`; 2: killed by signal `value`.
    int32_t kind;
    int32_t value;
};

/// Clones a child into new pid, mount, net, ipc, uts and cgroup namespaces that builds the jail
/// (binds, pivot_root, /proc, hostname, lo up, setsid) and, as the namespace's init, forks the
/// sample: rlimits, uid/gid with no capabilities, no_new_privs, pdeathsig, the seccomp filter,
/// execveat. Only async-signal-safe system calls run in the children. Returns the init's pid
/// (killing it kills the whole namespace), or -1 with errno.
int warden_sandbox_spawn(const struct warden_sandbox_spec *spec);

/// A non-blocking netlink socket subscribed to the kernel's audit records (the read-only
/// multicast group, CAP_AUDIT_READ): every record, where /dev/kmsg gets the ones the printk
/// rate limit lets through (10 per 5 s) when no auditd runs. -1 with errno set on failure.
int warden_audit_listen(void);

/// Makes one seccomp-logged call (getppid, SECCOMP_RET_LOG) in a vforked child and reaps it;
/// returns the child's pid. The kernel sends audit records in order, so once this one's record
/// (type 1326, syscall 110, that pid) is read, every record queued before it was. -1 with errno
/// set if the child could not be made.
int warden_audit_sentinel(void);

/// Stops (SIGSTOP) every process of the pid namespace `pidns` (an open /proc/PID/ns/pid) but
/// its init, all at once: a vforked helper joins the namespace for its children, and its child
/// calls kill(-1, SIGSTOP) there, which walks the namespace's processes under the lock that a
/// fork takes to add one, so no process is created unseen meanwhile. Raw system calls only in
/// the children. 0, or -1 with errno set (ENOMEM: the namespace is ending).
int warden_stop_pid_namespace(int pidns);

/// The CLONE_NEW* flags (mnt, user, pid, net, ipc, uts, cgroup), which Swift's Glibc lacks.
/// Fills `out` (7 entries).
void warden_namespace_flags(uint64_t out[7]);

/// memfd_create(2) with MFD_CLOEXEC.
int warden_memfd(const char *name);

/// process_vm_readv(2) of one range of `pid`'s memory.
long warden_read_process_memory(int pid, uint64_t address, void *buffer, size_t length);

/// process_vm_writev(2) of `length` bytes into one range of `pid`'s memory.
long warden_write_process_memory(int pid, uint64_t address, const void *bytes, size_t length);

/// Receives one descriptor sent with SCM_RIGHTS on `socket`; -1 with errno on failure.
int warden_receive_fd(int socket);

/// pipe2(2) with O_CLOEXEC (Swift's Glibc lacks pipe2).
int warden_pipe_cloexec(int fds[2]);

/// accept4(fd, NULL, NULL, SOCK_CLOEXEC), and the connecting process's pid (SO_PEERCRED, 0 if
/// unknown) in *peer_pid: both need _GNU_SOURCE, which the Glibc module does not define.
int warden_accept_cloexec(int fd, int *peer_pid);

/// The flags of the launcher's sendmsg of the seccomp listener (MSG_NOSIGNAL | MSG_EOR), made
/// after the filter is loaded: the filter observes every other sendmsg, and observing this one
/// would wait for the listener it carries.
#define WARDEN_LAUNCHER_SENDMSG_FLAGS 0x4080

/// Asks for synchronous wake-ups on a seccomp notification listener (Linux 6.6+,
/// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP): the blocked task and the supervisor hand over on one CPU
/// instead of waking each other across CPUs. Fails harmlessly on older kernels.
int warden_seccomp_sync_wakeup(int listener);

/// Answers seccomp notification `id` by installing `fd` in the waiting process
/// (SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SEND, Linux 5.14+): the call returns the new
/// descriptor's number there, O_CLOEXEC when `cloexec`. The new number, or -1 with errno (ENOENT:
/// the call is no longer waiting; EMFILE: the process is at its descriptor limit).
int warden_seccomp_add_fd_and_answer(int listener, uint64_t id, int fd, int cloexec);

/// Puts a copy of `fd` at descriptor `target_fd` of the process waiting on notification `id`,
/// in place of what was there, as dup2 would (SECCOMP_ADDFD_FLAG_SETFD, Linux 5.9+), without
/// answering the call. `target_fd`, or -1 with errno (ENOENT: the call is no longer waiting).
int warden_seccomp_replace_fd(int listener, uint64_t id, int fd, int target_fd, int cloexec);

/// setns(nsfd, CLONE_NEWNET) for the calling thread (Swift's Glibc does not import setns).
int warden_join_net_namespace(int nsfd);

/// A unix socket of `type`, close-on-exec, non-blocking when asked, and autobound when asked:
/// what the sandbox hands a sample instead of an IPv4 or IPv6 socket (autobound), or for an
/// i386 socketcall(SYS_SOCKET) of a unix one (not bound).
int warden_unix_stand_in(int type, int nonblocking, int autobind);

/// A connected pair of unix sockets of `type`, close-on-exec: fds[0] for the sample (non-blocking
/// when asked), fds[1] for the supervisor, non-blocking and passing each sender's credentials.
int warden_unix_stand_in_pair(int type, int nonblocking, int fds[2]);

/// One datagram from `fd` without waiting (recvmsg with MSG_DONTWAIT), and its sender's pid from
/// SCM_CREDENTIALS in *sender_pid (0 when none came). Its length, or -1 with errno.
long warden_receive_datagram(int fd, void *buffer, size_t size, int *sender_pid);

/// One traced syscall exit (SyscallExitTrace.c): the thread (its id in the initial pid
/// namespace), when (CLOCK_MONOTONIC ns), which call (the number of the caller's ABI, with bit
/// 32 set for an i386 call) and what it returned (-errno on failure).
struct warden_syscall_exit {
    int32_t tid;
    uint64_t time;
    int64_t id;
    int64_t ret;
};

/// A trace made by warden_exit_trace_load: a BPF ring buffer (`map`, mapped at `consumer` and
/// `producer`), the map naming the pid namespace followed (`target`), the program, and the link
/// that attaches it to the tracepoint (-1 while detached).
struct warden_exit_trace {
    int map;
    int target;
    int program;
    int link;
    void *consumer;
    void *producer;
    int ring_bytes;
};

/// Loads a BPF program for the raw `sys_exit` tracepoint that keeps, in a ring buffer of
/// `ring_bytes` (a power of two, a multiple of the page size), the exits of the calls numbered
/// `native` (x86_64's numbers) or `compat` (i386's, for calls made through its ABI) made by
/// processes of the pid namespace warden_exit_trace_target names. Not attached yet. 0, or -1
/// with errno (ENOTSUP off x86_64: the program reads x86_64's registers; EPERM without CAP_BPF
/// and CAP_PERFMON, or CAP_SYS_ADMIN).
int warden_exit_trace_load(const int *native, int native_count, const int *compat, int compat_count, int ring_bytes,
                           struct warden_exit_trace *trace);

/// Follows the pid namespace with that nsfs device and inode from now on. 0, or -1 with errno.
int warden_exit_trace_target(struct warden_exit_trace *trace, uint64_t pidns_device, uint64_t pidns_inode);

/// Attaches the program (if it is not): from now on it runs at every system call's exit on the
/// host (about 0.1 µs; most are over at the number's test). Attaching again soon after the
/// tracepoint's last program was detached waits for an RCU grace period (11-17 ms measured
/// here). 0, or -1 with errno.
int warden_exit_trace_attach(struct warden_exit_trace *trace);

/// Detaches the program: at once, waiting for nothing.
void warden_exit_trace_detach(struct warden_exit_trace *trace);

/// Moves up to `capacity` exits from the ring buffer into `out`; returns how many.
int warden_exit_trace_drain(struct warden_exit_trace *trace, struct warden_syscall_exit *out, int capacity);

/// Detaches and unloads the program, and frees the ring buffer.
void warden_exit_trace_close(struct warden_exit_trace *trace);
