// CWardenLinux: mount flags and mount namespaces.
#include "internal.h"

#include <sys/mount.h>
#include <sys/wait.h>

int warden_remount_in_namespace(int nsfd, const char *path, unsigned long flags) {
    pid_t child = fork();
    if (child < 0) return -1;
    if (child == 0) {
        if (nsfd >= 0 && setns(nsfd, CLONE_NEWNS) != 0) _exit(errno & 0xff);
        if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | flags, NULL) != 0) _exit(errno & 0xff);
        _exit(0);
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    errno = WIFEXITED(status) ? WEXITSTATUS(status) : ECHILD;
    return -1;
}

int warden_private_mount_namespace(void) {
    if (unshare(CLONE_NEWNS) != 0) return -1;
    return mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL);
}
