// CWardenLinux: the kernel's process events connector (netlink CN_PROC), exec events only.
#include "internal.h"

#include <arpa/inet.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <sys/socket.h>

/// Sends a multicast listen or ignore request to the process connector.
static int proc_events_send(int fd, enum proc_cn_mcast_op op) {
    // nlmsghdr, then cn_msg, then the operation: built as bytes (cn_msg ends in a flexible array).
    unsigned char buffer[NLMSG_HDRLEN + sizeof(struct cn_msg) + sizeof(op)];
    memset(buffer, 0, sizeof buffer);
    struct nlmsghdr *header = (struct nlmsghdr *)buffer;
    header->nlmsg_len = sizeof buffer;
    header->nlmsg_type = NLMSG_DONE;
    struct cn_msg *message = (struct cn_msg *)(buffer + NLMSG_HDRLEN);
    message->id.idx = CN_IDX_PROC;
    message->id.val = CN_VAL_PROC;
    message->len = sizeof(op);
    memcpy(message->data, &op, sizeof op);
    return send(fd, buffer, sizeof buffer, MSG_NOSIGNAL) == (ssize_t)sizeof buffer ? 0 : -1;
}

int warden_proc_events_open(int receive_buffer_bytes) {
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR);
    if (fd < 0) return -1;
    // Only exec events reach the socket: the kernel drops forks, exits and the rest before they
    // are queued (classic BPF loads big-endian words, the event's `what` is host order).
    size_t what = NLMSG_HDRLEN + sizeof(struct cn_msg) + offsetof(struct proc_event, what);
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (unsigned int)what),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, htonl(PROC_EVENT_EXEC), 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    struct sock_fprog program = { sizeof code / sizeof code[0], code };
    struct sockaddr_nl address;
    memset(&address, 0, sizeof address);
    address.nl_family = AF_NETLINK;
    address.nl_groups = CN_IDX_PROC;
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program) != 0 ||
        bind(fd, (struct sockaddr *)&address, sizeof address) != 0 ||
        proc_events_send(fd, PROC_CN_MCAST_LISTEN) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    // Room for a burst of execs; root may pass rmem_max.
    if (receive_buffer_bytes > 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &receive_buffer_bytes, sizeof receive_buffer_bytes) != 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer_bytes, sizeof receive_buffer_bytes);
    }
    return fd;
}

void warden_proc_events_close(int fd) {
    // The kernel counts listeners and builds events only while there are any.
    proc_events_send(fd, PROC_CN_MCAST_IGNORE);
    close(fd);
}

struct warden_proc_event_layout warden_proc_event_layout(void) {
    struct warden_proc_event_layout layout = {
        .event = NLMSG_HDRLEN + sizeof(struct cn_msg),
        .what = offsetof(struct proc_event, what),
        .timestamp = offsetof(struct proc_event, timestamp_ns),
        .exec_pid = offsetof(struct proc_event, event_data.exec.process_pid),
        .exec_tgid = offsetof(struct proc_event, event_data.exec.process_tgid),
        .exec_what = PROC_EVENT_EXEC,
        .size = sizeof(struct proc_event),
    };
    return layout;
}
