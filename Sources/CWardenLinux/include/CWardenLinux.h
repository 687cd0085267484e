// CWardenLinux: the kernel-facing C of shmwarden (the store's is CWardenSQLite).
//
// Only what Swift cannot call itself lives here: headers the Glibc module leaves out
// (<sys/vfs.h>, <sys/eventfd.h>, <linux/openat2.h>, <sys/fanotify.h>), variadic calls
// (syscall), macros, constants that older headers lack, and the code that runs between clone
// and exec. One header and one .c file per kernel subsystem. A function returns 0 (or a
// descriptor, or a count) on success and -1 with errno set on failure, so one Swift helper can
// wrap them all; the few that do otherwise say so where they are declared. Only WardenLinux
// calls these.
#pragma once

#include "warden_files.h"
#include "warden_process.h"
#include "warden_process_events.h"
#include "warden_mount.h"
#include "warden_fanotify.h"
#include "warden_cpu.h"
#include "warden_socket.h"
#include "warden_seccomp.h"
#include "warden_audit.h"
#include "warden_launcher.h"
#include "warden_exit_trace.h"
