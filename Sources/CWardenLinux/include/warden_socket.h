// CWardenLinux: unix sockets: descriptor passing, credentials, the sandbox's stand-ins.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// sendmsg(2) of `length` bytes on unix socket `fd` without waiting, no SIGPIPE, with
/// SCM_CREDENTIALS naming process `pid` as the sender (CAP_SYS_ADMIN): what the receiver's
/// SO_PASSCRED sees is the process the message is sent for.
long warden_send_now_as(int fd, const void *bytes, size_t length, int pid);

/// Receives one descriptor sent with SCM_RIGHTS on `socket`; -1 with errno on failure.
int warden_receive_fd(int socket);

/// accept4(fd, NULL, NULL, SOCK_CLOEXEC), and the connecting process's pid (SO_PEERCRED, 0 if
/// unknown) in *peer_pid: both need _GNU_SOURCE, which the Glibc module does not define.
int warden_accept_cloexec(int fd, int *peer_pid);

/// A unix socket of `type`, close-on-exec, non-blocking when asked, and autobound when asked:
/// what the sandbox hands a sample instead of an IPv4 or IPv6 socket (autobound), or for an
/// i386 socketcall(SYS_SOCKET) of a unix one (not bound).
int warden_unix_stand_in(int type, int nonblocking, int autobind);

/// A connected pair of unix sockets of `type`, close-on-exec: fds[0] for the sample (non-blocking
/// when asked), fds[1] for the supervisor, non-blocking and passing each sender's credentials.
int warden_unix_stand_in_pair(int type, int nonblocking, int fds[2]);

/// One datagram from `fd` without waiting (recvmsg with MSG_DONTWAIT), and its sender's pid from
/// SCM_CREDENTIALS in *sender_pid (0 when none came). Its length, or -1 with errno.
long warden_receive_datagram(int fd, void *buffer, size_t size, int *sender_pid);
