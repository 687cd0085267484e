// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import WardenCore

/// How the observer answers a sample's IPv4 and IPv6 socket calls, which it sees only when the
/// run is observed (the filter alone refuses those sockets).
///
/// A refused socket(2) hid where the sample meant to connect, and a dropper's literal-IP
/// connect-back is the most common thing it does. So the filter passes socket(AF_INET or
/// AF_INET6) to the observer, which answers a stream or datagram one with a stand-in: an
/// autobound unix socket of the same type, made in the jail's own network namespace. The sample
/// never holds a socket of any family but AF_UNIX. Its connect, sendto and bind with an IPv4 or
/// IPv6 address then reach the observer, which reads the address and answers the call itself, as
/// a host with only a loopback would: the kernel never acts on an address the observer read, so
/// nothing depends on the sample leaving its memory alone. A call with any other address goes on
/// to the kernel, which refuses an IPv4 or IPv6 one on a unix socket by itself (EINVAL).
///
/// Pure: the numbers are Linux's, written out so that the rules can be tested on their own.
enum SandboxNetworkAnswer: Equatable {
    /// CONTINUE: the kernel runs the call.
    case proceed
    /// The call fails with this errno, without running.
    case fail(Int32)
    /// The call returns 0, without running.
    case succeed
    /// The call returns this count, the supervisor having done what it asked (a DNS query's
    /// sendto, delivered to the jail's name server).
    case returns(Int64)
    /// socket(2) returns a new stand-in of this type (SOCK_STREAM or SOCK_DGRAM).
    case standIn(type: Int32, nonBlocking: Bool, closeOnExec: Bool)
    /// socketcall(SYS_SOCKET) returns a new unix socket of this type, made for it: an i386
    /// program's unix socket, whose family the filter could not read in memory.
    case unixSocket(type: Int32, nonBlocking: Bool, closeOnExec: Bool)

    /// The calls with an address the observer answers.
    enum AddressCall: Equatable {
        case connect, sendto, bind
    }

    static let unix: UInt64 = 1
    static let inet: UInt64 = 2
    static let inet6: UInt64 = 10
    static let stream: Int32 = 1
    static let datagram: Int32 = 2
    static let raw: Int32 = 3
    static let nonBlockingFlag: UInt64 = 0o4000
    static let closeOnExecFlag: UInt64 = 0o2000000

    // errno values (asm-generic, the same on every Linux architecture this runs on).
    static let EPERM: Int32 = 1
    static let EACCES: Int32 = 13
    static let EFAULT: Int32 = 14
    static let EINVAL: Int32 = 22
    static let EPROTONOSUPPORT: Int32 = 93
    static let ESOCKTNOSUPPORT: Int32 = 94
    static let EADDRNOTAVAIL: Int32 = 99
    static let ENETUNREACH: Int32 = 101
    static let EISCONN: Int32 = 106
    static let ECONNREFUSED: Int32 = 111

    /// socket(domain, type, protocol) for an IPv4 or IPv6 domain (the only ones the filter
    /// notifies): a stand-in for a stream or datagram socket of a protocol the kernel would give;
    /// a raw socket fails as it does without CAP_NET_RAW (EPERM); anything else as the kernel
    /// would refuse it.
    static func forSocket(domain: UInt64, type: UInt64, protocolNumber: UInt64) -> SandboxNetworkAnswer {
        guard domain == inet || domain == inet6 else { return .fail(EPERM) }
        let flags = type & ~UInt64(0xf)
        guard flags & ~(nonBlockingFlag | closeOnExecFlag) == 0 else { return .fail(EINVAL) }
        let base = Int32(type & 0xf)
        let protocolNumber = Int32(truncatingIfNeeded: protocolNumber)
        let answer = SandboxNetworkAnswer.standIn(
            type: base, nonBlocking: flags & nonBlockingFlag != 0, closeOnExec: flags & closeOnExecFlag != 0)
        switch base {
        // 0, TCP, MPTCP.
        case stream: return [0, 6, 262].contains(protocolNumber) ? answer : .fail(EPROTONOSUPPORT)
        // 0, UDP, UDP-Lite, and the ICMP "ping" sockets of each family.
        case datagram: return [0, 17, 136, 1, 58].contains(protocolNumber) ? answer : .fail(EPROTONOSUPPORT)
        case raw: return .fail(EPERM)
        default: return .fail(ESOCKTNOSUPPORT)
        }
    }

    /// i386's socketcall(SYS_SOCKET, {domain, type, protocol}): its arguments are in memory the
    /// filter cannot read, so the observer answers every one itself, and the kernel never makes
    /// a socket from what the sample's memory says: a unix socket of the type asked for, made
    /// for it; an IPv4 or IPv6 one as `forSocket` answers; any other family refused (EPERM), as
    /// the filter refuses it from socket(2).
    static func forSocketCall(domain: UInt64, type: UInt64, protocolNumber: UInt64) -> SandboxNetworkAnswer {
        guard domain == unix else { return forSocket(domain: domain, type: type, protocolNumber: protocolNumber) }
        let flags = type & ~UInt64(0xf)
        guard flags & ~(nonBlockingFlag | closeOnExecFlag) == 0 else { return .fail(EINVAL) }
        let base = Int32(type & 0xf)
        // Stream, datagram, sequenced packets; a unix socket's protocol is 0 (or PF_UNIX).
        guard [stream, datagram, 5].contains(base) else { return .fail(ESOCKTNOSUPPORT) }
        guard protocolNumber == 0 || protocolNumber == unix else { return .fail(EPROTONOSUPPORT) }
        return .unixSocket(
            type: base, nonBlocking: flags & nonBlockingFlag != 0, closeOnExec: flags & closeOnExecFlag != 0)
    }

    /// An IPv4 or IPv6 address, as read from a `struct sockaddr`.
    struct Address: Equatable {
        var isIPv6: Bool
        /// 4 or 16 bytes, network order.
        var bytes: [UInt8]
        var port: Int

        /// 127.0.0.0/8, ::1, and an IPv4-mapped loopback.
        var isLoopback: Bool {
            if !isIPv6 { return bytes[0] == 127 }
            if bytes == [UInt8](repeating: 0, count: 15) + [1] { return true }
            return bytes.prefix(10).allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff && bytes[12] == 127
        }
        /// 0.0.0.0 or ::, which means this host: to bind, every address; to connect, the loopback.
        var isUnspecified: Bool { bytes.allSatisfy { $0 == 0 } }
    }

    /// The IPv4 or IPv6 address in `sockaddr`; nil for another family. A structure too short
    /// for its family (`length` is what the call passed) is `.some(nil)`.
    static func address(in sockaddr: [UInt8], length: UInt64) -> Address?? {
        guard sockaddr.count >= 2 else { return nil }
        let family = UInt64(sockaddr[0]) | UInt64(sockaddr[1]) << 8
        guard family == inet || family == inet6 else { return nil }
        let isIPv6 = family == inet6
        let needed = isIPv6 ? 24 : 16
        guard sockaddr.count >= needed, length >= UInt64(needed) else { return .some(nil) }
        let bytes = isIPv6 ? Array(sockaddr[8..<24]) : Array(sockaddr[4..<8])
        return Address(isIPv6: isIPv6, bytes: bytes, port: Int(sockaddr[2]) << 8 | Int(sockaddr[3]))
    }

    /// connect, sendto or bind with the address `sockaddr` (read from the sample's memory; nil
    /// when it could not be read, or sendto passed none). An IPv4 or IPv6 one is answered as a
    /// host with only a loopback answers it; any other goes on to the kernel.
    /// `datagram`: the socket is a datagram stand-in with the name server at its other end
    /// (`SandboxNameService.adopt`).
    /// `privilegedPortsBelow`: net.ipv4.ip_unprivileged_port_start, 1024 in a new network
    /// namespace such as the jail's.
    static func forAddress(
        _ call: AddressCall, sockaddr: [UInt8]?, length: UInt64, datagram: Bool = false,
        privilegedPortsBelow: Int = 1024
    ) -> SandboxNetworkAnswer {
        guard let sockaddr, let parsed = address(in: sockaddr, length: length) else { return .proceed }
        guard let address = parsed else { return .fail(EINVAL) }
        let local = address.isLoopback || address.isUnspecified
        switch call {
        // A datagram socket's connect only sets its peer: made, to the loopback or to any name
        // server's port, and what it then sends reaches the jail's name server (a resolver's
        // query: resolv.conf's 127.0.0.1, or one a sample has built in, such as Mirai's 8.8.8.8).
        case .connect where datagram:
            return local || address.port == DNSQuestion.port ? .succeed : .fail(ENETUNREACH)
        // A TCP connect to a loopback port nobody listens on, or anything with no route.
        case .connect, .sendto: return .fail(local ? ECONNREFUSED : ENETUNREACH)
        case .bind:
            // The jail's only addresses are its loopback's (and the wildcard).
            guard local else { return .fail(EADDRNOTAVAIL) }
            // The sample is no root: a port below the host's unprivileged start is refused.
            if address.port > 0 && address.port < privilegedPortsBelow { return .fail(EACCES) }
            return .succeed
        }
    }

    /// What the report says the call got: an errno's name, `ok`, or nil when the kernel answered
    /// (its result is not seen).
    var result: String? {
        switch self {
        case .proceed: nil
        case .fail(let code): ErrnoName.of(code)
        case .succeed, .returns, .standIn, .unixSocket: "ok"
        }
    }
}
