// CWardenLinux: the sandbox launcher.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
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

/// The flags of the launcher's sendmsg of the seccomp listener (MSG_NOSIGNAL | MSG_EOR), made
/// after the filter is loaded: the filter observes every other sendmsg, and observing this one
/// would wait for the listener it carries.
#define WARDEN_LAUNCHER_SENDMSG_FLAGS 0x4080
