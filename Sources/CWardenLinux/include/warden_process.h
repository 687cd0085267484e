// CWardenLinux: processes, pidfds, process memory, pid and net namespaces.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// Raises RLIMIT_NOFILE's soft limit to its hard limit; returns the new soft limit or -1.
long warden_raise_nofile_limit(void);

/// pidfd_open(2): a descriptor that names one process for as long as it is held, immune to pid
/// reuse. Not wrapped by Debian 12's glibc.
int warden_pidfd_open(int pid);

/// pidfd_getfd(2): a copy of descriptor `fd` of the process `pidfd` refers to (close-on-exec).
int warden_pidfd_getfd(int pidfd, int fd);

/// The parent pid and effective uid of `pid`, from one `PIDFD_GET_INFO` ioctl on a pidfd
/// (Linux 6.13+; a zombie not yet reaped still answers). 0, or -errno: -ESRCH when the process
/// is gone, -ENOTTY or -EINVAL on a kernel without the ioctl.
int warden_process_identity(int pid, int *ppid, unsigned int *euid);

/// pidfd_send_signal(2) with no siginfo: fails with ESRCH once the process is gone, so it never
/// signals a process that merely reuses the pid.
int warden_pidfd_send_signal(int pidfd, int signal);

/// setpriority(2) on the calling thread (its tid): Linux nice values are per thread.
int warden_set_thread_nice(int nice);

/// Stops (SIGSTOP) every process of the pid namespace `pidns` (an open /proc/PID/ns/pid) but
/// its init, all at once: a vforked helper joins the namespace for its children, and its child
/// calls kill(-1, SIGSTOP) there, which walks the namespace's processes under the lock that a
/// fork takes to add one, so no process is created unseen meanwhile. Raw system calls only in
/// the children. 0, or -1 with errno set (ENOMEM: the namespace is ending).
int warden_stop_pid_namespace(int pidns);

/// The CLONE_NEW* flags (mnt, user, pid, net, ipc, uts, cgroup), which Swift's Glibc lacks.
/// Fills `out` (7 entries).
void warden_namespace_flags(uint64_t out[7]);

/// process_vm_readv(2) of one range of `pid`'s memory.
long warden_read_process_memory(int pid, uint64_t address, void *buffer, size_t length);

/// process_vm_writev(2) of `length` bytes into one range of `pid`'s memory.
long warden_write_process_memory(int pid, uint64_t address, const void *bytes, size_t length);

/// setns(nsfd, CLONE_NEWNET) for the calling thread (Swift's Glibc does not import setns).
int warden_join_net_namespace(int nsfd);
