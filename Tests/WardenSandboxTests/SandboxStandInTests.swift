// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Testing

@testable import WardenSandbox

/// What a stand-in tells the sample of itself: what the IPv4 or IPv6 socket would.
@Suite struct SandboxStandInTests {
    typealias Address = SandboxNetworkAnswer.Address

    func v4(_ bytes: [UInt8], _ port: Int) -> Address { Address(isIPv6: false, bytes: bytes, port: port) }
    func v6(_ bytes: [UInt8], _ port: Int) -> Address { Address(isIPv6: true, bytes: bytes, port: port) }

    @Test func itsNamesFollowItsBindAndConnect() throws {
        var standIn = SandboxStandIn(isIPv6: false, type: SandboxNetworkAnswer.stream)
        // Unbound: the wildcard, port 0; no peer.
        #expect(try standIn.name(peer: false).get() == [2, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 8))
        #expect(standIn.name(peer: true) == .failure(SandboxCallFailure(errno: SandboxStandIn.ENOTCONN)))
        // Connected to an outside address: from the address outside ones are made from.
        standIn.connected(to: v4([203, 0, 113, 7], 4444), ephemeralPort: { 41_000 })
        #expect(
            try standIn.name(peer: true).get() == [2, 0, 0x11, 0x5c, 203, 0, 113, 7] + [UInt8](repeating: 0, count: 8))
        #expect(
            try standIn.name(peer: false).get()
                == [2, 0, 0xa0, 0x28] + SandboxStandIn.outsideIPv4 + [UInt8](repeating: 0, count: 8))

        // Bound to a port first, then connected to the loopback: that port, the loopback's address.
        var bound = SandboxStandIn(isIPv6: false, type: SandboxNetworkAnswer.datagram)
        bound.bound(to: v4([0, 0, 0, 0], 5353), ephemeralPort: { 41_001 })
        #expect(try bound.name(peer: false).get().prefix(8) == [2, 0, 0x14, 0xe9, 0, 0, 0, 0])
        bound.connected(to: v4([127, 0, 0, 1], 53), ephemeralPort: { 41_002 })
        #expect(try bound.name(peer: false).get().prefix(8) == [2, 0, 0x14, 0xe9, 127, 0, 0, 1])
        // A bind to port 0 gets one.
        var any = SandboxStandIn(isIPv6: true, type: SandboxNetworkAnswer.stream)
        any.bound(to: v6([UInt8](repeating: 0, count: 16), 0), ephemeralPort: { 41_003 })
        #expect(try any.name(peer: false).get() == [10, 0, 0xa0, 0x2b, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 20))
    }

    @Test func anIPv6SocketGivesIPv6Addresses() throws {
        var standIn = SandboxStandIn(isIPv6: true, type: SandboxNetworkAnswer.stream)
        let mapped = SandboxStandIn.mappedPrefix + [198, 51, 100, 3]
        standIn.connected(to: v6(mapped, 443), ephemeralPort: { 41_000 })
        let peer = try standIn.name(peer: true).get()
        #expect(peer.count == 28 && peer.prefix(4) == [10, 0, 1, 0xbb] && Array(peer[8..<24]) == mapped)
        // From the IPv4-mapped form of the outside address.
        let local = try standIn.name(peer: false).get()
        #expect(Array(local[8..<24]) == SandboxStandIn.mappedPrefix + SandboxStandIn.outsideIPv4)

        var loopback = SandboxStandIn(isIPv6: true, type: SandboxNetworkAnswer.stream)
        loopback.connected(to: v6([UInt8](repeating: 0, count: 15) + [1], 8080), ephemeralPort: { 41_001 })
        #expect(Array(try loopback.name(peer: false).get()[8..<24]) == [UInt8](repeating: 0, count: 15) + [1])
        var outside = SandboxStandIn(isIPv6: true, type: SandboxNetworkAnswer.stream)
        outside.connected(
            to: v6([0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [9], 80), ephemeralPort: { 1 })
        #expect(Array(try outside.name(peer: false).get()[8..<24]) == SandboxStandIn.outsideIPv6)
    }

    @Test func itsOptionsAreKeptAndReadBack() throws {
        var standIn = SandboxStandIn(isIPv6: false, type: SandboxNetworkAnswer.stream)
        // TCP_NODELAY: unset reads 0, set reads what was set.
        #expect(try standIn.option(level: 6, name: 1, room: 4).get() == [0, 0, 0, 0])
        #expect(standIn.setOption(level: 6, name: 1, value: [1, 0, 0, 0]) == nil)
        #expect(try standIn.option(level: 6, name: 1, room: 4).get() == [1, 0, 0, 0])
        // Cut to the room given; a negative room and an empty value are refused.
        #expect(try standIn.option(level: 6, name: 1, room: 1).get() == [1])
        #expect(standIn.option(level: 6, name: 1, room: -1) == .failure(SandboxCallFailure(errno: 22)))
        #expect(standIn.setOption(level: 0, name: 2, value: []) == SandboxCallFailure(errno: 22))
        // What SOL_SOCKET says of its kind; never set there.
        #expect(try standIn.option(level: 1, name: 39, room: 4).get() == [2, 0, 0, 0])
        #expect(try standIn.option(level: 1, name: 38, room: 4).get() == [6, 0, 0, 0])
        #expect(
            try SandboxStandIn(isIPv6: true, type: SandboxNetworkAnswer.datagram).option(level: 1, name: 38, room: 4)
                .get() == [17, 0, 0, 0])
        #expect(SandboxStandIn.answers(level: 1, name: 39, set: false))
        #expect(!SandboxStandIn.answers(level: 1, name: 39, set: true))
        #expect(!SandboxStandIn.answers(level: 1, name: 4, set: false))  // SO_ERROR: the unix socket's
        // The hop limits' defaults.
        #expect(try standIn.option(level: 0, name: 2, room: 4).get() == [64, 0, 0, 0])
        #expect(try standIn.option(level: 41, name: 16, room: 4).get() == [64, 0, 0, 0])
    }
}
