// CWardenLinux: unix sockets: descriptor passing, credentials, the sandbox's stand-ins.
#include "internal.h"

#include <sys/socket.h>
#include <sys/uio.h>

int warden_receive_fd(int socket) {
    char data;
    struct iovec iov = { &data, 1 };
    union { char buffer[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    struct msghdr message = { 0 };
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control.buffer;
    message.msg_controllen = sizeof control.buffer;
    ssize_t received = recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
    if (received <= 0) { if (received == 0) errno = ECONNRESET; return -1; }
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    if (!header || header->cmsg_type != SCM_RIGHTS) { errno = EPROTO; return -1; }
    int fd;
    memcpy(&fd, CMSG_DATA(header), sizeof fd);
    return fd;
}

long warden_send_now_as(int fd, const void *bytes, size_t length, int pid) {
    struct iovec iov = { (void *)bytes, length };
    union { char buffer[CMSG_SPACE(sizeof(struct ucred))]; struct cmsghdr align; } control;
    struct msghdr message = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buffer,
                              .msg_controllen = sizeof control.buffer };
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_CREDENTIALS;
    header->cmsg_len = CMSG_LEN(sizeof(struct ucred));
    struct ucred credentials = { .pid = pid, .uid = getuid(), .gid = getgid() };
    memcpy(CMSG_DATA(header), &credentials, sizeof credentials);
    return (long)sendmsg(fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
}

int warden_accept_cloexec(int fd, int *peer_pid) {
    int connection = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (connection < 0) return -1;
    struct ucred credentials = { 0 };
    socklen_t size = sizeof credentials;
    *peer_pid = getsockopt(connection, SOL_SOCKET, SO_PEERCRED, &credentials, &size) == 0 ? credentials.pid : 0;
    return connection;
}

int warden_unix_stand_in(int type, int nonblocking, int autobind) {
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0 || !autobind) return fd;
    // Autobind (an address of the family alone): a stand-in the sample "binds" to an IPv4 or IPv6
    // address can then listen, as an unbound unix socket cannot.
    sa_family_t family = AF_UNIX;
    if (bind(fd, (struct sockaddr *)&family, sizeof family) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int warden_unix_stand_in_pair(int type, int nonblocking, int fds[2]) {
    if (socketpair(AF_UNIX, type | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0, fds) != 0) return -1;
    int one = 1;
    if (fcntl(fds[1], F_SETFL, O_NONBLOCK) != 0 || setsockopt(fds[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0) {
        int saved = errno;
        close(fds[0]);
        close(fds[1]);
        errno = saved;
        return -1;
    }
    return 0;
}

long warden_receive_datagram(int fd, void *buffer, size_t size, int *sender_pid) {
    struct iovec part = { .iov_base = buffer, .iov_len = size };
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(struct ucred))];
    } control;
    struct msghdr message = {
        .msg_iov = &part, .msg_iovlen = 1, .msg_control = control.space, .msg_controllen = sizeof control.space,
    };
    ssize_t count = recvmsg(fd, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (count < 0) return -1;
    *sender_pid = 0;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_CREDENTIALS) {
            struct ucred credentials;
            memcpy(&credentials, CMSG_DATA(header), sizeof credentials);
            *sender_pid = credentials.pid;
        }
    }
    return (long)count;
}
