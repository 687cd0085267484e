// CWardenLinux: the sandbox's trace of system call exits (BPF).
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
