// CWardenLinux: seccomp user-notification ioctls libseccomp lacks.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
