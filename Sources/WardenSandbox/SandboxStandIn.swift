// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// One stand-in as the sample knows it: the IPv4 or IPv6 socket it asked for, which is a unix
/// socket (`SandboxNetworkAnswer`). Asked for its names (getsockname, getpeername) or for an
/// option of an IP level (setsockopt, getsockopt), the unix socket answers for itself, AF_UNIX
/// and EOPNOTSUPP: a client that sets TCP_NODELAY (Python's urllib3, and requests with it)
/// failed before it ever connected, and one that read its own address got none. The observer
/// answers those calls from this record instead, as the socket asked for would, with the bind,
/// connect and sends it answered before.
///
/// Pure: the numbers are Linux's, written out so that the answers can be tested on their own.
struct SandboxStandIn: Equatable {
    typealias Address = SandboxNetworkAnswer.Address

    let isIPv6: Bool
    /// SOCK_STREAM or SOCK_DGRAM.
    let type: Int32
    /// Its own address: bound to, or given at its connect or first send (the wildcard before).
    private(set) var local: Address
    /// Where it is connected (nil: nowhere).
    private(set) var peer: Address?
    /// Where its last datagram delivered with an address went (a DNS query's name server):
    /// what its answer comes from.
    private(set) var lastSentTo: Address?
    /// The options set at an IP level, by level and name.
    private var options: [OptionName: [UInt8]] = [:]

    struct OptionName: Hashable {
        var level: Int32
        var name: Int32
    }

    /// The levels whose options the stand-in keeps: IPPROTO_IP, IPPROTO_TCP, IPPROTO_UDP,
    /// IPPROTO_IPV6 (SOL_SOCKET's the unix socket answers for itself, but for `familyOptions`).
    static let levels: [Int32] = [0, 6, 17, 41]
    static let socketLevel: Int32 = 1
    /// SOL_SOCKET's options that name the socket's kind, read only: SO_PROTOCOL, SO_DOMAIN
    /// (the unix socket's are AF_UNIX and 0).
    static let familyOptions: [Int32] = [38, 39]

    /// Whether the stand-in answers option `name` of `level` (`set`: setsockopt).
    static func answers(level: Int32, name: Int32, set: Bool) -> Bool {
        levels.contains(level) || (!set && level == socketLevel && familyOptions.contains(name))
    }

    /// The address a connection to an outside address is made from, as the sample is told: a
    /// home network's, not one known as a sandbox's (10.0.2.15 is VirtualBox's NAT), and a
    /// unique-local IPv6 one.
    static let outsideIPv4: [UInt8] = [192, 168, 1, 37]
    static let outsideIPv6: [UInt8] = [0xfd, 0x5a, 0x17, 0x3c, 0x9e, 0x21, 0, 1] + [0, 0, 0, 0, 0, 0, 0, 0x37]

    static let ENOTCONN: Int32 = 107

    init(isIPv6: Bool, type: Int32) {
        self.isIPv6 = isIPv6
        self.type = type
        local = Address(isIPv6: isIPv6, bytes: [UInt8](repeating: 0, count: isIPv6 ? 16 : 4), port: 0)
    }

    /// Its bind to `address` succeeded; a port of 0 becomes one `ephemeralPort` gives.
    mutating func bound(to address: Address, ephemeralPort: () -> Int) {
        local = address
        if local.port == 0 { local.port = ephemeralPort() }
    }

    /// Its connect to `address` succeeded: it is connected there, from an address of its own
    /// (what it was bound to, else the loopback for a loopback peer, else `outsideIPv4` or
    /// `outsideIPv6`, IPv4-mapped for an IPv4-mapped peer), with a port (one `ephemeralPort`
    /// gives, when it had none).
    mutating func connected(to address: Address, ephemeralPort: () -> Int) {
        peer = address
        if local.isUnspecified {
            let mapped = address.isIPv6 && address.bytes.prefix(12).elementsEqual(Self.mappedPrefix)
            let v4 = address.isLoopback ? [127, 0, 0, 1] : Self.outsideIPv4
            local.bytes =
                !address.isIPv6
                ? v4
                : mapped
                    ? Self.mappedPrefix + v4
                    : address.isLoopback ? [UInt8](repeating: 0, count: 15) + [1] : Self.outsideIPv6
            local.isIPv6 = address.isIPv6
        }
        if local.port == 0 { local.port = ephemeralPort() }
    }

    /// It sent a datagram to `address`, delivered: an unbound socket gets its port then (one
    /// `ephemeralPort` gives).
    mutating func sent(to address: Address, ephemeralPort: () -> Int) {
        lastSentTo = address
        if local.port == 0 { local.port = ephemeralPort() }
    }

    /// Where what it receives comes from, as a `struct sockaddr` of its family: its peer, else
    /// where it last sent; nil when neither is known.
    var source: [UInt8]? { (peer ?? lastSentTo).map { Self.sockaddr($0, ofIPv6Socket: isIPv6) } }

    static let mappedPrefix: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]

    /// getsockname (`peer` false) or getpeername: the `struct sockaddr_in` or `sockaddr_in6`,
    /// or ENOTCONN for the peer of a socket connected nowhere.
    func name(peer: Bool) -> Result<[UInt8], SandboxCallFailure> {
        guard let address = peer ? self.peer : local else { return .failure(SandboxCallFailure(errno: Self.ENOTCONN)) }
        return .success(Self.sockaddr(address, ofIPv6Socket: isIPv6))
    }

    /// `address` as a socket of the family (`ofIPv6Socket`) gives it.
    static func sockaddr(_ address: Address, ofIPv6Socket: Bool) -> [UInt8] {
        let port = [UInt8(address.port >> 8 & 0xff), UInt8(address.port & 0xff)]
        if ofIPv6Socket {
            let bytes = address.isIPv6 ? address.bytes : mappedPrefix + address.bytes
            return [10, 0] + port + [0, 0, 0, 0] + bytes + [0, 0, 0, 0]
        }
        return [2, 0] + port + address.bytes.suffix(4) + [UInt8](repeating: 0, count: 8)
    }

    /// setsockopt(level, name, value) at an IP level: kept, to be read back; an empty value is
    /// refused (EINVAL) as the kernel refuses it.
    /// Nil when it was set.
    mutating func setOption(level: Int32, name: Int32, value: [UInt8]) -> SandboxCallFailure? {
        guard !value.isEmpty else { return SandboxCallFailure(errno: SandboxNetworkAnswer.EINVAL) }
        options[OptionName(level: level, name: name)] = Array(value.prefix(Self.optionLimit))
        return nil
    }

    /// The most bytes of an option's value kept.
    static let optionLimit = 256

    /// getsockopt(level, name) with room for `room` bytes: what was set, else the option's
    /// default (an int: 64 for IP_TTL and IPV6_UNICAST_HOPS, 0 for the rest), cut to `room`;
    /// SO_DOMAIN and SO_PROTOCOL as the socket asked for has them.
    func option(level: Int32, name: Int32, room: Int) -> Result<[UInt8], SandboxCallFailure> {
        guard room >= 0 else { return .failure(SandboxCallFailure(errno: SandboxNetworkAnswer.EINVAL)) }
        let value: [UInt8]
        switch (level, name) {
        case (Self.socketLevel, 39): value = Self.intBytes(isIPv6 ? 10 : 2)  // SO_DOMAIN
        case (Self.socketLevel, 38): value = Self.intBytes(type == SandboxNetworkAnswer.stream ? 6 : 17)  // SO_PROTOCOL
        default:
            value =
                options[OptionName(level: level, name: name)]
                ?? Self.intBytes((level == 0 && name == 2) || (level == 41 && name == 16) ? 64 : 0)
        }
        return .success(Array(value.prefix(room)))
    }

    static func intBytes(_ value: Int32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }
}

extension Result {
    /// The value, if it is one.
    var value: Success? {
        if case .success(let value) = self { return value }
        return nil
    }
}

/// A call answered with this errno.
struct SandboxCallFailure: Error, Equatable {
    var errno: Int32
}
