// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import WardenLinux

/// A notified network call, once its arguments are known (an i386 socketcall's read from
/// its argument block).
enum SandboxNetworkCall {
    case socket(domain: UInt64, type: UInt64, protocolNumber: UInt64, viaSocketCall: Bool)
    /// connect, sendto or bind on descriptor `fd`, with an address of `length` bytes.
    case address(SandboxNetworkAnswer.AddressCall, fd: Int32, length: UInt64)
    /// A socketcall(SYS_SOCKET) whose argument block could not be read.
    case unreadableSocketCall
    /// getsockname or getpeername (`peer`) on descriptor `fd`: the address goes at
    /// `address`, its length at `lengthAddress` (which holds the room there).
    case name(fd: Int32, address: UInt64, lengthAddress: UInt64, peer: Bool)
    /// setsockopt (`set`: its value at `value`, `length` bytes) or getsockopt (its value goes
    /// at `value`, its length at address `length`, which holds the room there).
    case option(fd: Int32, level: Int32, name: Int32, value: UInt64, length: UInt64, set: Bool)
    /// listen(2) on descriptor `fd`.
    case listen(fd: Int32)
    /// recvfrom(fd, buffer, length, flags, address, length address).
    case receive(fd: Int32, buffer: UInt64, length: UInt64, flags: UInt64, address: UInt64, lengthAddress: UInt64)

    var isSocketCreation: Bool {
        switch self {
        case .socket, .unreadableSocketCall: true
        case .address, .name, .option, .receive, .listen: false
        }
    }

    /// What `plan`'s call is, from what `capture` read; nil for a socketcall of another kind.
    static func of(_ plan: SandboxArgumentPlan, _ call: SandboxCall?) -> SandboxNetworkCall? {
        switch plan {
        case .socket:
            guard let args = call?.args else { return nil }
            return .socket(domain: args.0, type: args.1, protocolNumber: args.2, viaSocketCall: false)
        case .socketName(let peer):
            guard let args = call?.args else { return nil }
            return .name(fd: Int32(truncatingIfNeeded: args.0), address: args.1, lengthAddress: args.2, peer: peer)
        case .socketOption(let set):
            guard let args = call?.args else { return nil }
            return option(args, set: set)
        case .listen:
            guard let args = call?.args else { return nil }
            return .listen(fd: Int32(truncatingIfNeeded: args.0))
        case .receiveFrom:
            guard let args = call?.args else { return nil }
            return .receive(
                fd: Int32(truncatingIfNeeded: args.0), buffer: args.1, length: args.2, flags: args.3, address: args.4,
                lengthAddress: args.5)
        case .socketAddress(_, let length, let kind):
            guard let args = call?.args else { return nil }
            return .address(kind, fd: Int32(truncatingIfNeeded: args.0), length: SandboxCall.register(length, of: args))
        case .message:
            // Answered as sendto's address is (a sendmmsg's first message's stands for all).
            guard let call, call.first != nil else { return nil }
            return .address(.sendto, fd: Int32(truncatingIfNeeded: call.args.0), length: call.addressLength ?? 0)
        case .socketCall:
            guard let call else { return nil }
            let args = call.args
            switch call.multiplexed {
            case "socket": return .socket(domain: args.0, type: args.1, protocolNumber: args.2, viaSocketCall: true)
            case "connect": return .address(.connect, fd: Int32(truncatingIfNeeded: args.0), length: args.2)
            case "bind": return .address(.bind, fd: Int32(truncatingIfNeeded: args.0), length: args.2)
            case "sendto": return .address(.sendto, fd: Int32(truncatingIfNeeded: args.0), length: args.5)
            case "listen": return .listen(fd: Int32(truncatingIfNeeded: args.0))
            case "getsockname", "getpeername":
                return .name(
                    fd: Int32(truncatingIfNeeded: args.0), address: args.1, lengthAddress: args.2,
                    peer: call.multiplexed == "getpeername")
            case "setsockopt", "getsockopt": return option(args, set: call.multiplexed == "setsockopt")
            case nil where call.args.0 == 1: return .unreadableSocketCall
            default: return nil
            }
        default: return nil
        }
    }

    /// setsockopt's or getsockopt's (fd, level, name, value, length).
    private static func option(_ args: SeccompArguments, set: Bool) -> SandboxNetworkCall {
        .option(
            fd: Int32(truncatingIfNeeded: args.0), level: Int32(truncatingIfNeeded: args.1),
            name: Int32(truncatingIfNeeded: args.2), value: args.3, length: args.4, set: set)
    }
}
