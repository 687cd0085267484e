// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Testing

@testable import WardenSandbox

/// How the observer answers IPv4 and IPv6 socket calls: as a host with only a loopback would.
@Suite struct SandboxNetworkAnswerTests {
    typealias Answer = SandboxNetworkAnswer

    /// `struct sockaddr_in` for a.b.c.d:port.
    func inet(_ address: [UInt8], _ port: Int) -> [UInt8] {
        [2, 0, UInt8(port >> 8), UInt8(port & 0xff)] + address + [UInt8](repeating: 0, count: 8)
    }

    /// `struct sockaddr_in6` for the 16 bytes `address` and port.
    func inet6(_ address: [UInt8], _ port: Int) -> [UInt8] {
        [10, 0, UInt8(port >> 8), UInt8(port & 0xff), 0, 0, 0, 0] + address + [0, 0, 0, 0]
    }

    @Test func streamAndDatagramSocketsGetAStandInOfTheirType() {
        #expect(
            Answer.forSocket(domain: 2, type: 1, protocolNumber: 0)
                == .standIn(type: 1, nonBlocking: false, closeOnExec: false))
        #expect(
            Answer.forSocket(domain: 10, type: 1, protocolNumber: 6)
                == .standIn(type: 1, nonBlocking: false, closeOnExec: false))
        // SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, UDP.
        #expect(
            Answer.forSocket(domain: 2, type: 2 | 0o4000 | 0o2000000, protocolNumber: 17)
                == .standIn(type: 2, nonBlocking: true, closeOnExec: true))
        // An ICMP "ping" socket is a datagram one.
        #expect(
            Answer.forSocket(domain: 2, type: 2, protocolNumber: 1)
                == .standIn(type: 2, nonBlocking: false, closeOnExec: false))
    }

    @Test func otherSocketsFailAsTheKernelWouldFailThem() {
        // Raw: no CAP_NET_RAW.
        #expect(Answer.forSocket(domain: 2, type: 3, protocolNumber: 1) == .fail(Answer.EPERM))
        // TCP over a datagram socket, UDP over a stream one.
        #expect(Answer.forSocket(domain: 2, type: 2, protocolNumber: 6) == .fail(Answer.EPROTONOSUPPORT))
        #expect(Answer.forSocket(domain: 10, type: 1, protocolNumber: 17) == .fail(Answer.EPROTONOSUPPORT))
        // SOCK_SEQPACKET (SCTP's), an unknown flag, a family the filter never passes on.
        #expect(Answer.forSocket(domain: 2, type: 5, protocolNumber: 0) == .fail(Answer.ESOCKTNOSUPPORT))
        #expect(Answer.forSocket(domain: 2, type: 1 | 0x100, protocolNumber: 0) == .fail(Answer.EINVAL))
        #expect(Answer.forSocket(domain: 17, type: 3, protocolNumber: 0) == .fail(Answer.EPERM))
    }

    /// i386's socketcall(SYS_SOCKET): a unix socket made for it, IPv4 and IPv6 as socket(2)
    /// gets them, anything else refused; never left to the kernel.
    @Test func socketCallsAreAnsweredWithoutTheKernelReadingThem() {
        #expect(
            Answer.forSocketCall(domain: 1, type: 1, protocolNumber: 0)
                == .unixSocket(type: 1, nonBlocking: false, closeOnExec: false))
        #expect(
            Answer.forSocketCall(domain: 1, type: 5 | 0o2000000, protocolNumber: 0)
                == .unixSocket(type: 5, nonBlocking: false, closeOnExec: true))
        #expect(
            Answer.forSocketCall(domain: 2, type: 2 | 0o4000, protocolNumber: 17)
                == .standIn(type: 2, nonBlocking: true, closeOnExec: false))
        #expect(Answer.forSocketCall(domain: 17, type: 3, protocolNumber: 0) == .fail(Answer.EPERM))
        #expect(Answer.forSocketCall(domain: 16, type: 2, protocolNumber: 0) == .fail(Answer.EPERM))
        #expect(Answer.forSocketCall(domain: 1, type: 3, protocolNumber: 0) == .fail(Answer.ESOCKTNOSUPPORT))
        #expect(Answer.forSocketCall(domain: 1, type: 1, protocolNumber: 6) == .fail(Answer.EPROTONOSUPPORT))
        #expect(Answer.forSocketCall(domain: 1, type: 1 | 0x100, protocolNumber: 0) == .fail(Answer.EINVAL))
    }

    @Test func connectsAndSendsFailAsWithNoRoute() {
        #expect(
            Answer.forAddress(.connect, sockaddr: inet([203, 0, 113, 7], 4444), length: 16) == .fail(Answer.ENETUNREACH)
        )
        #expect(Answer.forAddress(.sendto, sockaddr: inet([8, 8, 8, 8], 53), length: 16) == .fail(Answer.ENETUNREACH))
        var google = [UInt8](repeating: 0, count: 16)
        google[0] = 0x20
        google[1] = 0x01
        #expect(Answer.forAddress(.connect, sockaddr: inet6(google, 443), length: 28) == .fail(Answer.ENETUNREACH))
    }

    @Test func loopbackAndWildcardConnectsAreRefused() {
        #expect(
            Answer.forAddress(.connect, sockaddr: inet([127, 0, 0, 1], 22), length: 16) == .fail(Answer.ECONNREFUSED))
        #expect(
            Answer.forAddress(.connect, sockaddr: inet([127, 8, 9, 10], 22), length: 16) == .fail(Answer.ECONNREFUSED))
        #expect(
            Answer.forAddress(.connect, sockaddr: inet([0, 0, 0, 0], 80), length: 16) == .fail(Answer.ECONNREFUSED))
        let loopback6 = [UInt8](repeating: 0, count: 15) + [1]
        #expect(Answer.forAddress(.connect, sockaddr: inet6(loopback6, 80), length: 28) == .fail(Answer.ECONNREFUSED))
        let mapped = [UInt8](repeating: 0, count: 10) + [0xff, 0xff, 127, 0, 0, 1]
        #expect(Answer.forAddress(.sendto, sockaddr: inet6(mapped, 53), length: 28) == .fail(Answer.ECONNREFUSED))
    }

    @Test func bindsSucceedOnTheJailsOwnAddressesAndUnprivilegedPorts() {
        #expect(Answer.forAddress(.bind, sockaddr: inet([0, 0, 0, 0], 4444), length: 16) == .succeed)
        #expect(Answer.forAddress(.bind, sockaddr: inet([127, 0, 0, 1], 0), length: 16) == .succeed)
        #expect(
            Answer.forAddress(.bind, sockaddr: inet6([UInt8](repeating: 0, count: 16), 8080), length: 28) == .succeed)
        // No such address in the jail; a port only root may take.
        #expect(
            Answer.forAddress(.bind, sockaddr: inet([192, 0, 2, 1], 4444), length: 16) == .fail(Answer.EADDRNOTAVAIL))
        #expect(Answer.forAddress(.bind, sockaddr: inet([0, 0, 0, 0], 22), length: 16) == .fail(Answer.EACCES))
        #expect(Answer.forAddress(.bind, sockaddr: inet([0, 0, 0, 0], 1023), length: 16) == .fail(Answer.EACCES))
        #expect(Answer.forAddress(.bind, sockaddr: inet([0, 0, 0, 0], 1024), length: 16) == .succeed)
    }

    @Test func otherAddressesGoOnToTheKernel() {
        let unix: [UInt8] = [1, 0] + Array("/run/x".utf8) + [0]
        #expect(Answer.forAddress(.connect, sockaddr: unix, length: 9) == .proceed)
        #expect(Answer.forAddress(.connect, sockaddr: nil, length: 0) == .proceed)
        #expect(Answer.forAddress(.bind, sockaddr: [2], length: 1) == .proceed)
        // An IPv4 structure shorter than its family's, read or passed.
        #expect(
            Answer.forAddress(.connect, sockaddr: Array(inet([1, 2, 3, 4], 80).prefix(8)), length: 16)
                == .fail(Answer.EINVAL))
        #expect(Answer.forAddress(.connect, sockaddr: inet([1, 2, 3, 4], 80), length: 8) == .fail(Answer.EINVAL))
        #expect(
            Answer.forAddress(.connect, sockaddr: inet6([UInt8](repeating: 0, count: 16), 80), length: 16)
                == .fail(Answer.EINVAL))
    }

    /// A datagram stand-in with the name server at its other end connects where a resolver
    /// would: the loopback, or any name server's port 53; elsewhere there is no route.
    @Test func datagramConnectsReachTheNameServer() {
        #expect(
            Answer.forAddress(.connect, sockaddr: inet([127, 0, 0, 1], 53), length: 16, datagram: true) == .succeed)
        #expect(Answer.forAddress(.connect, sockaddr: inet([127, 0, 0, 1], 9), length: 16, datagram: true) == .succeed)
        #expect(Answer.forAddress(.connect, sockaddr: inet([8, 8, 8, 8], 53), length: 16, datagram: true) == .succeed)
        #expect(
            Answer.forAddress(.connect, sockaddr: inet([8, 8, 8, 8], 123), length: 16, datagram: true)
                == .fail(Answer.ENETUNREACH))
        // Without the name server there: as any connect.
        #expect(Answer.forAddress(.connect, sockaddr: inet([8, 8, 8, 8], 53), length: 16) == .fail(Answer.ENETUNREACH))
    }

    @Test func resultsNameTheAnswer() {
        #expect(Answer.proceed.result == nil)
        #expect(Answer.succeed.result == "ok")
        #expect(Answer.fail(Answer.ENETUNREACH).result == "ENETUNREACH")
        #expect(Answer.fail(24).result == "EMFILE")
        #expect(Answer.fail(7).result == "E2BIG")
        #expect(Answer.fail(4096).result == "errno 4096")
    }

    @Test func ipv6AddressesAreWrittenAsRFC5952Says() {
        func address(_ groups: [Int]) -> [UInt8] { groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] } }
        #expect(SandboxCallDescriber.ipv6Text(address([0, 0, 0, 0, 0, 0, 0, 0])) == "::")
        #expect(SandboxCallDescriber.ipv6Text(address([0, 0, 0, 0, 0, 0, 0, 1])) == "::1")
        #expect(SandboxCallDescriber.ipv6Text(address([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1])) == "2001:db8::1")
        // The longest run, the first of two equal ones, and no :: for a single zero group.
        #expect(SandboxCallDescriber.ipv6Text(address([0x2001, 0, 0, 1, 0, 0, 0, 1])) == "2001:0:0:1::1")
        #expect(SandboxCallDescriber.ipv6Text(address([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1])) == "2001:db8::1:0:0:1")
        #expect(SandboxCallDescriber.ipv6Text(address([0x2001, 0xdb8, 0, 1, 1, 1, 1, 1])) == "2001:db8:0:1:1:1:1:1")
        #expect(SandboxCallDescriber.ipv6Text(address([0xfe80, 0, 0, 0, 0, 0, 0, 0])) == "fe80::")
        #expect(SandboxCallDescriber.ipv6Text(address([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201])) == "::ffff:192.0.2.1")
    }
}
