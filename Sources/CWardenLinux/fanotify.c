// CWardenLinux: fanotify, which Swift's Glibc module does not import.
#include "internal.h"

#include <sys/fanotify.h>

int warden_fanotify_init(unsigned int flags, unsigned int event_f_flags) {
    return fanotify_init(flags, event_f_flags);
}

int warden_fanotify_mark(int fanotify_fd, unsigned int flags, uint64_t mask, const char *path) {
    return fanotify_mark(fanotify_fd, flags, mask, AT_FDCWD, path);
}

int warden_fanotify_mark_descriptor(int fanotify_fd, unsigned int flags, uint64_t mask, int fd) {
    return fanotify_mark(fanotify_fd, flags, mask, fd, NULL);
}

struct warden_fanotify_constants warden_fanotify_constants(void) {
    struct warden_fanotify_constants c = {
        .class_notif = FAN_CLASS_NOTIF,
        .class_content = FAN_CLASS_CONTENT,
        .cloexec = FAN_CLOEXEC,
        .nonblock = FAN_NONBLOCK,
        .unlimited_queue = FAN_UNLIMITED_QUEUE,
        .unlimited_marks = FAN_UNLIMITED_MARKS,
        .mark_add = FAN_MARK_ADD,
        .mark_remove = FAN_MARK_REMOVE,
        .mark_mount = FAN_MARK_MOUNT,
        .mark_filesystem = FAN_MARK_FILESYSTEM,
        .mark_ignored_mask = FAN_MARK_IGNORED_MASK,
        .close_write = FAN_CLOSE_WRITE,
        .open_exec = FAN_OPEN_EXEC,
        .open_exec_perm = FAN_OPEN_EXEC_PERM,
        .event_on_child = FAN_EVENT_ON_CHILD,
        .q_overflow = FAN_Q_OVERFLOW,
        .ondir = FAN_ONDIR,
        .nofd = FAN_NOFD,
        .metadata_version = FANOTIFY_METADATA_VERSION,
        .allow = FAN_ALLOW,
        .deny = FAN_DENY,
        .event_f_flags = O_RDONLY | O_LARGEFILE | O_CLOEXEC,
    };
    return c;
}
