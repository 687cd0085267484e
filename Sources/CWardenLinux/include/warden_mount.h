// CWardenLinux: mount flags and mount namespaces.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
