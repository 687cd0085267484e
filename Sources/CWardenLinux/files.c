// CWardenLinux: files and file systems (openat2, statfs, renameat2, eventfd, memfd, pipe2).
#include "internal.h"

#include <linux/magic.h>
#include <sys/eventfd.h>
#include <sys/vfs.h>

#ifndef RESOLVE_NO_MAGICLINKS
#define RESOLVE_NO_MAGICLINKS 0x02
#endif
#ifndef RESOLVE_NO_SYMLINKS
#define RESOLVE_NO_SYMLINKS 0x04
#endif
#ifndef RESOLVE_NO_XDEV
#define RESOLVE_NO_XDEV 0x01
#endif
#ifndef RESOLVE_IN_ROOT
#define RESOLVE_IN_ROOT 0x10
#endif

struct warden_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

int warden_fstatfs_type(int fd, int64_t *type) {
    struct statfs sfs;
    if (fstatfs(fd, &sfs) != 0) return -1;
    *type = (int64_t)sfs.f_type;
    return 0;
}

int64_t warden_tmpfs_magic(void) { return (int64_t)TMPFS_MAGIC; }

int warden_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

int warden_open_nosymlinks(int dirfd, const char *path, int flags) {
    struct warden_open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(flags | O_NOFOLLOW);
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd < 0 && errno == ENOSYS) {
        return openat(dirfd, path, flags | O_NOFOLLOW);
    }
    return (int)fd;
}

int warden_open_confined(int dirfd, const char *path, int flags, int in_root) {
    struct warden_open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(flags | O_NOFOLLOW);
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | (in_root ? RESOLVE_IN_ROOT : RESOLVE_NO_XDEV);
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

int warden_syncfs(int fd) { return syncfs(fd); }

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

int warden_rename_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, RENAME_NOREPLACE);
}

int warden_memfd(const char *name) { return (int)syscall(SYS_memfd_create, name, 1u /* MFD_CLOEXEC */); }

int warden_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }
