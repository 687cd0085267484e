// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

// The kernel's audit records (netlink): how the sandbox counts the calls its filter refused.

import CWardenLinux
@preconcurrency import Glibc
import SystemPackage

/// A non-blocking netlink socket on the kernel's audit records, read-only multicast group
/// (CAP_AUDIT_READ): every record, where /dev/kmsg gets what the printk rate limit lets through.
public func sys_auditListen() throws(SystemCallError) -> FileDescriptor {
    FileDescriptor(rawValue: try retryingInterrupts("socket(AF_NETLINK, NETLINK_AUDIT)") { warden_audit_listen() })
}

/// Makes one seccomp-logged getppid in a vforked child and reaps it; its pid. The kernel sends
/// audit records in order: once this child's record is read, every record queued before it was.
public func sys_auditSentinel() throws(SystemCallError) -> Int32 {
    try retryingInterrupts("vfork") { warden_audit_sentinel() }
}
