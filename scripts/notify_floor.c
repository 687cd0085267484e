// The kernel's own cost of seccomp user notification on this machine, for scripts/bench-sandbox:
// runs a program under a filter that notifies the calls shmwarden's sandbox observes (or, with
// `plain`, allows them unnotified), answered by the least a supervisor can do: receive, read the
// first argument string of the caller (process_vm_readv, 256 bytes), answer CONTINUE. Both run
// on one CPU with synchronous wake-up, as the sandbox's do. No namespaces, no jail: the ratio of
// its two modes is the floor that any observer's ratio on the same program sits on.
//
// Usage: notify_floor observed|plain CPU PROGRAM [ARGS...]; prints the wall milliseconds from
// fork to the program's exit. Its stdout goes to /dev/null.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS _IOW('!', 4, __u64)
#endif

static const char *observed[] = {
    "execve", "execveat", "open", "openat", "openat2", "creat", "connect", "sendto", "clone", "fork", "vfork",
    "unlink", "unlinkat", "rename", "renameat", "renameat2", "chmod", "fchmod", "fchmodat", "kill", "tkill",
    "tgkill", "memfd_create", "link", "linkat", "symlink", "symlinkat",
};

// Which argument holds the path (or name) of each call, as the observer reads it.
static int path_argument(const char *name) {
    if (strcmp(name, "openat") == 0 || strcmp(name, "openat2") == 0 || strcmp(name, "unlinkat") == 0 ||
        strcmp(name, "fchmodat") == 0 || strcmp(name, "execveat") == 0 || strcmp(name, "renameat") == 0 ||
        strcmp(name, "renameat2") == 0 || strcmp(name, "linkat") == 0)
        return 1;
    return 0;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void send_fd(int socket, int fd) {
    char byte = 0;
    struct iovec iov = { &byte, 1 };
    union { char buffer[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    struct msghdr message = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buffer,
                              .msg_controllen = sizeof control.buffer };
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &fd, sizeof fd);
    if (sendmsg(socket, &message, 0) < 0) _exit(120);
}

static int receive_fd(int socket) {
    char byte;
    struct iovec iov = { &byte, 1 };
    union { char buffer[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    struct msghdr message = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buffer,
                              .msg_controllen = sizeof control.buffer };
    if (recvmsg(socket, &message, 0) <= 0) return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&message)), sizeof fd);
    return fd;
}

int main(int argc, char **argv) {
    if (argc < 4 || (strcmp(argv[1], "observed") != 0 && strcmp(argv[1], "plain") != 0)) {
        fprintf(stderr, "usage: %s observed|plain CPU PROGRAM [ARGS...]\n", argv[0]);
        return 2;
    }
    int observe = strcmp(argv[1], "observed") == 0;
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CPU_SET(atoi(argv[2]), &cpus);
    if (sched_setaffinity(0, sizeof cpus, &cpus) != 0) { perror("sched_setaffinity"); return 1; }
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) { perror("socketpair"); return 1; }
    int paths[1024] = { 0 };
    for (size_t i = 0; i < sizeof observed / sizeof *observed; i++) {
        int number = seccomp_syscall_resolve_name(observed[i]);
        if (number >= 0 && number < 1024) paths[number] = path_argument(observed[i]);
    }
    double started = now_ms();
    pid_t child = fork();
    if (child == 0) {
        scmp_filter_ctx filter = seccomp_init(SCMP_ACT_ALLOW);
        for (size_t i = 0; i < sizeof observed / sizeof *observed; i++) {
            int number = seccomp_syscall_resolve_name(observed[i]);
            if (number >= 0 && observe) seccomp_rule_add(filter, SCMP_ACT_NOTIFY, number, 0);
        }
        // One rule that is not ALLOW either way, so that the plain filter is a filter too.
        seccomp_rule_add(filter, SCMP_ACT_ERRNO(1), SCMP_SYS(ptrace), 0);
        if (seccomp_load(filter) != 0) _exit(121);
        if (observe) send_fd(pair[1], seccomp_notify_fd(filter));
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execv(argv[3], argv + 3);
        _exit(127);
    }
    if (observe) {
        int listener = receive_fd(pair[0]);
        if (listener < 0) { fprintf(stderr, "no listener\n"); return 1; }
        ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, 1UL);  // SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (6.6+)
        struct seccomp_notif *request;
        struct seccomp_notif_resp *response;
        if (seccomp_notify_alloc(&request, &response) != 0) return 1;
        char path[256];
        for (;;) {
            memset(request, 0, sizeof *request);
            if (seccomp_notify_receive(listener, request) != 0) {
                // Waiting in RECV (6.6+) ends with ENOENT when the last process is gone.
                struct pollfd check = { .fd = listener, .events = POLLIN };
                if (poll(&check, 1, 0) >= 0 && (check.revents & POLLHUP) && !(check.revents & POLLIN)) break;
                continue;
            }
            int nr = request->data.nr;
            if (nr >= 0 && nr < 1024) {
                struct iovec local = { path, sizeof path };
                struct iovec remote = { (void *)(uintptr_t)request->data.args[paths[nr]], sizeof path };
                process_vm_readv((pid_t)request->pid, &local, 1, &remote, 1, 0);
            }
            memset(response, 0, sizeof *response);
            response->id = request->id;
            response->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
            seccomp_notify_respond(listener, response);
        }
    }
    int status;
    waitpid(child, &status, 0);
    printf("%.3f\n", now_ms() - started);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
