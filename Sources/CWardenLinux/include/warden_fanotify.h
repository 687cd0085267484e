// CWardenLinux: fanotify.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
