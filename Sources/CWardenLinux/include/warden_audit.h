// CWardenLinux: the kernel's audit records of seccomp decisions.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// A non-blocking netlink socket subscribed to the kernel's audit records (the read-only
/// multicast group, CAP_AUDIT_READ): every record, where /dev/kmsg gets the ones the printk
/// rate limit lets through (10 per 5 s) when no auditd runs. -1 with errno set on failure.
int warden_audit_listen(void);

/// Makes one seccomp-logged call (getppid, SECCOMP_RET_LOG) in a vforked child and reaps it;
/// returns the child's pid. The kernel sends audit records in order, so once this one's record
/// (type 1326, syscall 110, that pid) is read, every record queued before it was. -1 with errno
/// set if the child could not be made.
int warden_audit_sentinel(void);
