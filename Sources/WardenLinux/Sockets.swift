// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

// Unix sockets: abstract and path listeners, descriptor passing, credentials, and the stand-ins
// the sandbox hands a sample for IPv4 and IPv6 sockets.

import CWardenLinux
@preconcurrency import Glibc
import SystemPackage

/// A unix socket of `type`, close-on-exec, autobound unless told otherwise
/// (`warden_unix_stand_in`).
public func sys_unixStandInSocket(type: Int32, nonBlocking: Bool, autobind: Bool = true) throws(SystemCallError)
    -> FileDescriptor
{
    FileDescriptor(
        rawValue: try retryingInterrupts("socket(AF_UNIX)") {
            warden_unix_stand_in(type, nonBlocking ? 1 : 0, autobind ? 1 : 0)
        })
}

/// A connected pair of unix sockets of `type` (`warden_unix_stand_in_pair`): the sample's end,
/// and the supervisor's, non-blocking and passing each sender's credentials.
public func sys_unixStandInPair(type: Int32, nonBlocking: Bool) throws(SystemCallError) -> (
    sample: FileDescriptor, supervisor: FileDescriptor
) {
    var fds: [Int32] = [-1, -1]
    _ = try retryingInterrupts("socketpair(AF_UNIX)") { warden_unix_stand_in_pair(type, nonBlocking ? 1 : 0, &fds) }
    return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
}

/// Sends `bytes` on unix socket `socket` as one message without waiting (`MSG_DONTWAIT`, no
/// SIGPIPE), as process `pid` (its credentials, for a receiver that asks: needs CAP_SYS_ADMIN):
/// the count sent, or nil when it would have had to wait.
public func sys_sendNow(_ socket: FileDescriptor, _ bytes: [UInt8], asProcess pid: Int32) throws(SystemCallError)
    -> Int?
{
    while true {
        let sent = bytes.withUnsafeBytes { warden_send_now_as(socket.rawValue, $0.baseAddress, $0.count, pid) }
        if sent >= 0 { return sent }
        let code = Glibc.errno
        if code == EINTR { continue }
        if code == EAGAIN || code == EWOULDBLOCK { return nil }
        throw SystemCallError(syscall: "send", errno: Errno(rawValue: code))
    }
}

/// Receives one message waiting on `socket`, up to `limit` bytes, without waiting
/// (`MSG_DONTWAIT`; `peek` leaves it queued): nil when none waits.
public func sys_receiveNow(_ socket: FileDescriptor, limit: Int, peek: Bool = false) throws(SystemCallError) -> [UInt8]?
{
    var buffer = [UInt8](repeating: 0, count: limit)
    while true {
        let got = buffer.withUnsafeMutableBytes {
            recv(socket.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | (peek ? Int32(MSG_PEEK) : 0))
        }
        if got >= 0 { return Array(buffer.prefix(got)) }
        let code = Glibc.errno
        if code == EINTR { continue }
        if code == EAGAIN || code == EWOULDBLOCK { return nil }
        throw SystemCallError(syscall: "recv", errno: Errno(rawValue: code))
    }
}

public func sys_receiveDatagram(_ socket: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer)
    throws(SystemCallError) -> (count: Int, senderPID: Int32)?
{
    var pid: Int32 = 0
    while true {
        let count = warden_receive_datagram(socket.rawValue, buffer.baseAddress, buffer.count, &pid)
        if count >= 0 { return (Int(count), pid) }
        let code = Glibc.errno
        if code == EINTR { continue }
        if code == EAGAIN || code == EWOULDBLOCK { return nil }
        throw SystemCallError(syscall: "recvmsg", errno: Errno(rawValue: code))
    }
}

/// A connected pair of unix datagram-ordered sockets (`SOCK_SEQPACKET|SOCK_CLOEXEC`).
public func sys_socketPair() throws(SystemCallError) -> (FileDescriptor, FileDescriptor) {
    var fds: [Int32] = [-1, -1]
    _ = try retryingInterrupts("socketpair") {
        socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
    }
    return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
}

/// A unix datagram socket bound to the abstract name `name` (no leading NUL: it is added): a
/// claim on the name across the whole host (its network namespace) that the kernel drops when
/// the socket is closed or its process dies. `EADDRINUSE` when another socket holds the name.
public func sys_bindAbstractSocket(_ name: [UInt8]) throws(SystemCallError) -> FileDescriptor {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let length = withUnsafeMutableBytes(of: &address.sun_path) { path -> Int in
        // sun_path[0] stays 0 (abstract); the name follows, not NUL-terminated.
        let count = min(name.count, path.count - 1)
        for index in 0..<count { path[index + 1] = name[index] }
        return MemoryLayout<sa_family_t>.size + 1 + count
    }
    let fd = try retryingInterrupts("socket") {
        socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    }
    let bound = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(length)) }
    }
    if bound != 0 {
        let code = Glibc.errno
        close(fd)
        throw SystemCallError(syscall: "bind", path: [UInt8]("@".utf8) + name, errno: Errno(rawValue: code))
    }
    return FileDescriptor(rawValue: fd)
}

/// A listening unix stream socket (non-blocking, close-on-exec) at `name` inside `directory`,
/// bound through `/proc/self/fd` so that a directory of any path length works (a socket path is
/// at most 107 bytes).
public func sys_listenUnixStream(in directory: FileDescriptor, name: [UInt8], backlog: Int32 = 64)
    throws(SystemCallError) -> FileDescriptor
{
    let path = Array("/proc/self/fd/\(directory.rawValue)/".utf8) + name
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let fits = withUnsafeMutableBytes(of: &address.sun_path) { sunPath -> Bool in
        guard path.count < sunPath.count else { return false }
        for (index, byte) in path.enumerated() { sunPath[index] = byte }
        return true
    }
    guard fits else { throw SystemCallError(syscall: "bind", path: path, errno: .fileNameTooLong) }
    let fd = try retryingInterrupts("socket") {
        socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    }
    let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count + 1)
    let bound = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    if bound != 0 || listen(fd, backlog) != 0 {
        let code = Glibc.errno
        close(fd)
        throw SystemCallError(syscall: bound != 0 ? "bind" : "listen", path: path, errno: Errno(rawValue: code))
    }
    return FileDescriptor(rawValue: fd)
}

/// The next connection on a non-blocking listener (close-on-exec, blocking, reads giving up
/// after `receiveTimeoutMilliseconds`), and the pid of the process that connected (in this
/// process's pid namespace); nil when none is waiting.
public func sys_accept(_ listener: FileDescriptor, receiveTimeoutMilliseconds: Int)
    throws(SystemCallError) -> (connection: FileDescriptor, peerPID: Int32)?
{
    var peer: Int32 = 0
    let fd = warden_accept_cloexec(listener.rawValue, &peer)
    if fd < 0 {
        let code = Glibc.errno
        if code == EAGAIN || code == EINTR || code == ECONNABORTED { return nil }
        throw SystemCallError(syscall: "accept4", errno: Errno(rawValue: code))
    }
    var timeout = timeval(
        tv_sec: receiveTimeoutMilliseconds / 1000, tv_usec: (receiveTimeoutMilliseconds % 1000) * 1000)
    _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    return (FileDescriptor(rawValue: fd), peer)
}

/// Sends all of `bytes` on a connected socket without raising SIGPIPE when the peer is gone;
/// false when it could not.
public func sys_sendAll(_ socket: FileDescriptor, _ bytes: [UInt8]) -> Bool {
    var done = 0
    while done < bytes.count {
        let sent = bytes[done...].withUnsafeBytes {
            send(socket.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
        }
        if sent < 0 && Glibc.errno == EINTR { continue }
        if sent <= 0 { return false }
        done += sent
    }
    return true
}

/// One descriptor received with SCM_RIGHTS.
public func sys_receiveDescriptor(_ socket: FileDescriptor) throws(SystemCallError) -> FileDescriptor {
    let fd = try retryingInterrupts("recvmsg") { warden_receive_fd(socket.rawValue) }
    return FileDescriptor(rawValue: fd)
}
