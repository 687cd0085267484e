// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import WardenCore
import WardenLinux

// One notified call as the observer captured it, what to read of each call, and how a captured
// call is told in the report: pure, tested without a jail.

/// One notified call: its arguments and the memory they point at (up to two strings or
/// structures), read while the call was waiting for its answer.
struct SandboxCall {
    var nr: Int32
    /// Which of `architectures` the call was made in (0: the native ABI).
    var abi = 0
    /// Set when the run is over, from `nr`.
    var name = ""
    var pid: Int32
    var args: SeccompArguments
    var first: [UInt8]?
    var second: [UInt8]?
    /// An exec's argument vector, and whether it was read to its end.
    var arguments: (strings: [[UInt8]], complete: Bool)?
    /// `first` as the sample passed it, when it was relative to the working directory and
    /// `first` is now the absolute path (`workingDirectory`).
    var firstAsPassed: [UInt8]?
    /// The directory descriptor `first` is relative to, when it was left as passed.
    var directoryDescriptor: Int32?
    /// An exec through a descriptor (execveat with an empty path): whether it is the
    /// launcher's exec of the sample, and otherwise what the descriptor named
    /// (`/memfd:stage2 (deleted)`), read while the call waited.
    var isSampleExec = false
    var descriptorTarget: [UInt8]?
    /// What the observer answered, when it answered the call itself (`SandboxNetworkAnswer`).
    var result: String?
    /// The sink's connection a connect was made to (`SandboxConnectionSink`).
    var connection: Int?
    /// The call an i386 socketcall made (`connect`, `bind`, `sendto`), its arguments in `args`.
    var multiplexed: String?
    /// A sendmsg's address length, and its first buffer's length.
    var addressLength: UInt64?
    var payloadLength: UInt64?
    /// When the observer answered (CLOCK_MONOTONIC ns): the call's exit comes after it.
    var answeredAt: Int64 = 0
    /// A DNS query's sendto that the observer delivered to the jail's name server (which
    /// records its question).
    var delivered = false

    /// A getsockname, getpeername, setsockopt, getsockopt or recvfrom: a call answered for a
    /// stand-in (`SandboxStandIn`), only counted.
    var isStandInQuery: Bool {
        switch multiplexed ?? name {
        case "getsockname", "getpeername", "setsockopt", "getsockopt", "recvfrom": true
        default: false
        }
    }

    /// Argument `index` of a call, without building an array per call.
    static func register(_ index: Int, of args: SeccompArguments) -> UInt64 {
        switch index {
        case 0: args.0
        case 1: args.1
        case 2: args.2
        case 3: args.3
        case 4: args.4
        default: args.5
        }
    }
}

/// Which arguments of a call point at something worth reading.
enum SandboxArgumentPlan {
    /// Not described at all (only counted).
    case countOnly
    /// Described from the registers alone.
    case registers
    /// A path in argument `index`; for an open, its flags in argument `openFlags` (nil: a
    /// call that changes the file it names).
    case path(Int, openFlags: Int?)
    /// Two paths (rename).
    case paths(Int, Int)
    /// A descriptor in argument `index`, named by what it refers to (fchmod).
    case descriptor(Int)
    /// A program's path and its argument vector (execve, execveat).
    case exec(path: Int, arguments: Int)
    /// A path, then a `struct open_how` (openat2).
    case pathAndOpenHow(Int, Int)
    /// A `struct sockaddr` and its length (connect, sendto, bind), answered by the observer
    /// when it holds an IPv4 or IPv6 address (`SandboxNetworkAnswer`).
    case socketAddress(address: Int, length: Int, call: SandboxNetworkAnswer.AddressCall)
    /// socket(2) for IPv4 or IPv6 (the only families the filter notifies): described from
    /// the registers, answered with a stand-in.
    case socket
    /// sendmsg's `struct msghdr` (sendmmsg's first), in argument `index`: the address it names
    /// (then answered as sendto's is) and its first buffer.
    case message(Int)
    /// i386's socketcall(2): its call (socket, connect, bind, sendto, and the stand-ins'
    /// queries: the filter notifies those) and that call's arguments, 4-byte words in
    /// memory, read with the address a connect, bind or sendto gives.
    case socketCall
    /// A name in argument `index` that is no path (prctl's process name, memfd_create's).
    case name(Int)
    /// A symlink's target (its text, as it is stored) and the path it is made at, whose
    /// directory descriptor, if any, is the argument before it.
    case symlink(target: Int, path: Int)
    /// getsockname or getpeername (`peer`): answered for a stand-in (`SandboxStandIn`),
    /// only counted.
    case socketName(peer: Bool)
    /// setsockopt (`set`) or getsockopt at an IP level (and getsockopt's SO_DOMAIN and
    /// SO_PROTOCOL): answered for a stand-in, only counted.
    case socketOption(set: Bool)
    /// recvfrom with an address to fill in: answered for a datagram stand-in whose other end
    /// is the name server, only counted.
    case receiveFrom
    /// listen(2): described with the address of the stand-in it is made on.
    case listen

    init(_ name: String) {
        switch name {
        case "execve": self = .exec(path: 0, arguments: 1)
        case "execveat": self = .exec(path: 1, arguments: 2)
        case "open": self = .path(0, openFlags: 1)
        case "creat", "unlink", "chmod", "mkdir": self = .path(0, openFlags: nil)
        case "openat": self = .path(1, openFlags: 2)
        case "unlinkat", "fchmodat", "mkdirat": self = .path(1, openFlags: nil)
        case "openat2": self = .pathAndOpenHow(1, 2)
        case "rename", "link": self = .paths(0, 1)
        case "renameat", "renameat2", "linkat": self = .paths(1, 3)
        case "symlink": self = .symlink(target: 0, path: 1)
        case "symlinkat": self = .symlink(target: 0, path: 2)
        case "connect": self = .socketAddress(address: 1, length: 2, call: .connect)
        case "sendto": self = .socketAddress(address: 4, length: 5, call: .sendto)
        case "bind": self = .socketAddress(address: 1, length: 2, call: .bind)
        case "sendmsg", "sendmmsg": self = .message(1)
        case "socket": self = .socket
        case "socketcall": self = .socketCall
        case "getsockname": self = .socketName(peer: false)
        case "getpeername": self = .socketName(peer: true)
        case "setsockopt": self = .socketOption(set: true)
        case "getsockopt": self = .socketOption(set: false)
        case "recvfrom": self = .receiveFrom
        case "listen": self = .listen
        case "fchmod": self = .descriptor(0)
        case "clone", "fork", "vfork", "kill", "tkill", "tgkill": self = .registers
        case "memfd_create": self = .name(0)
        case "prctl": self = .name(1)
        default: self = .countOnly
        }
    }
}

/// What a described call comes to in the report.
enum SandboxCallEvent {
    case file(SandboxReport.FileAccess)
    case network(SandboxReport.NetworkAttempt)
    case process(SandboxReport.Process)
    case signal(String)
    case none
}

/// How a captured call is told in the report, and the path and address forms it is told in.
enum SandboxCallDescriber {
    /// clone(2)'s CLONE_THREAD flag.
    static let cloneThread: UInt64 = 0x10000

    /// `relative` against `directory` (an absolute path without symlinks: the kernel's name for
    /// a working directory). `.` components go; a leading `..` takes a component off
    /// `directory`, which is exact since it has no symlinks; a `..` after another component
    /// stays, since that component may be a symlink.
    static func join(_ directory: [UInt8], _ relative: [UInt8]) -> [UInt8] {
        let slash = UInt8(ascii: "/")
        var base = directory.split(separator: slash).map(Array.init)
        var rest = relative.split(separator: slash, omittingEmptySubsequences: true).map(Array.init)
        rest.removeAll { $0 == [UInt8(ascii: ".")] }
        while rest.first == Array("..".utf8) {
            rest.removeFirst()
            if !base.isEmpty { base.removeLast() }
        }
        let components = base + rest
        return components.isEmpty ? [slash] : components.flatMap { [slash] + $0 }
    }

    static func describe(_ call: SandboxCall) -> SandboxCallEvent {
        let (name, pid, args) = (call.name, call.pid, call.args)
        // Paths for people: bytes that are not UTF-8, and control bytes, as \xNN (the exact
        // bytes go in `pathBase64`, set by the caller).
        let first = call.first.map { PathBytes($0).displayString } ?? "?"
        let second = call.second.map { PathBytes($0).displayString } ?? "?"
        // Arguments go in as they were, or as much as could be read (nil when none could).
        let arguments = call.arguments.map { $0.strings.map { String(decoding: $0, as: UTF8.self) } }
        let argumentsComplete = call.arguments.map(\.complete) == false ? false : nil
        switch name {
        case "execve":
            // A path through a descriptor is reported as what the descriptor named.
            let target = call.descriptorTarget.map { String(decoding: $0, as: UTF8.self) }
            var process = SandboxReport.Process(
                syscall: name, path: target ?? first, pid: pid, arguments: arguments,
                argumentsComplete: argumentsComplete)
            if target != nil { process.passedAs = first }
            return .process(process)
        case "execveat":
            // By descriptor: the sample itself, or what the descriptor named (a memfd: fileless).
            let byDescriptor =
                call.isSampleExec
                ? SandboxReport.Process.theSample
                : call.descriptorTarget.map { String(decoding: $0, as: UTF8.self) }
                    ?? "(descriptor \(Int32(truncatingIfNeeded: args.0)))"
            return .process(
                .init(
                    syscall: name, path: first.isEmpty ? byDescriptor : first, pid: pid,
                    arguments: arguments, argumentsComplete: argumentsComplete))
        // A clone with CLONE_THREAD starts a thread of the same process (Go's runtime makes a
        // few at start): counted with the calls, no process.
        case "clone" where args.0 & Self.cloneThread != 0: return .none
        case "clone", "fork", "vfork": return .process(.init(syscall: name, path: nil, pid: pid))
        case "open", "creat":
            let flags = name == "creat" ? Int32(O_CREAT | O_WRONLY | O_TRUNC) : Int32(truncatingIfNeeded: args.1)
            let mode = name == "creat" ? args.1 : args.2
            return .file(
                .init(syscall: name, path: first, detail: openFlags(flags, mode: mode), created: flags & O_CREAT != 0))
        case "openat", "openat2":
            // openat2 passes struct open_how {flags, mode, resolve} by pointer.
            let field = { (offset: Int) -> UInt64 in
                guard let how = call.second, how.count >= offset + 8 else { return 0 }
                return how.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self) }
            }
            let flags = Int32(truncatingIfNeeded: name == "openat2" ? field(0) : args.2)
            let mode = name == "openat2" ? field(8) : args.3
            return .file(
                .init(syscall: name, path: first, detail: openFlags(flags, mode: mode), created: flags & O_CREAT != 0))
        case "unlink", "unlinkat": return .file(.init(syscall: name, path: first, detail: nil, created: false))
        // A directory: a hidden place to work in (`/tmp/.X11-unix/.x`), a persistence place.
        case "mkdir", "mkdirat":
            let mode = String(name == "mkdir" ? args.1 & 0o7777 : args.2 & 0o7777, radix: 8)
            return .file(.init(syscall: name, path: first, detail: "mode " + mode, created: false))
        // A new name for an existing file (the path is the new name), and a symlink made at a path.
        case "link", "linkat": return .file(.init(syscall: name, path: second, detail: "to \(first)", created: true))
        case "symlink", "symlinkat":
            return .file(.init(syscall: name, path: first, detail: "-> \(second)", created: true))
        case "rename", "renameat", "renameat2":
            return .file(.init(syscall: name, path: first, detail: "to \(second)", created: false))
        case "chmod": return .file(.init(syscall: name, path: first, detail: String(args.1, radix: 8), created: false))
        case "fchmodat":
            return .file(.init(syscall: name, path: first, detail: String(args.2, radix: 8), created: false))
        case "fchmod":
            // The file the descriptor named while the call waited (a dropper's write, then fchmod).
            let path = call.descriptorTarget.map { String(decoding: $0, as: UTF8.self) } ?? "fd \(args.0)"
            return .file(.init(syscall: name, path: path, detail: String(args.1, radix: 8), created: false))
        // A send on a connected socket names no address: its peer is the connect's, listed there.
        case "sendto" where args.4 == 0: return .none
        case "sendmsg" where call.first == nil, "sendmmsg" where call.first == nil: return .none
        // On a stand-in, with the address it listens on (`first`); on a unix socket, not described.
        case "listen" where call.first == nil: return .none
        case "listen":
            var attempt = socketAddress(call.first ?? [], syscall: name)
            attempt.result = call.result
            return .network(attempt)
        case "connect", "sendto", "bind", "sendmsg", "sendmmsg":
            guard let bytes = call.first else {
                return .network(.init(syscall: name, family: "unknown", address: nil, port: nil, result: call.result))
            }
            var attempt = socketAddress(bytes, syscall: name)
            attempt.result = call.result
            // A datagram's first bytes, as the sink keeps a connection's (sendto's length: args.2).
            if name != "connect" && name != "bind", let payload = call.second {
                attempt.sentBytes = Int(clamping: name == "sendto" ? args.2 : call.payloadLength ?? 0)
                attempt.sent = PathBytes(payload).displayString
                attempt.sentBase64 = PathBytes(payload).base64
            }
            return .network(attempt)
        case "socket":
            return .network(
                .init(
                    syscall: name, family: familyName(Int32(truncatingIfNeeded: args.0)), address: nil, port: nil,
                    type: socketTypeName(Int32(truncatingIfNeeded: args.1) & 0xf), result: call.result))
        case "prctl": return .process(.init(syscall: name, path: nil, pid: pid, renamedTo: first))
        // A file with no path on any mount: what a fileless dropper writes its next stage into.
        case "memfd_create":
            return .file(.init(syscall: name, path: "/memfd:" + first, detail: memfdFlags(args.1), created: true))
        case "kill", "tkill":
            return .signal("\(name)(\(Int32(truncatingIfNeeded: args.0)), \(args.1))")
        case "tgkill":
            return .signal(
                "tgkill(\(Int32(truncatingIfNeeded: args.0)), \(Int32(truncatingIfNeeded: args.1)), \(args.2))")
        default: return .none
        }
    }

    /// `O_WRONLY|O_CREAT|O_TRUNC mode 0755`: the mode only when the call creates.
    static func openFlags(_ flags: Int32, mode: UInt64 = 0) -> String {
        var parts = [flags & O_ACCMODE == O_WRONLY ? "O_WRONLY" : flags & O_ACCMODE == O_RDWR ? "O_RDWR" : "O_RDONLY"]
        for (bit, name) in [(O_CREAT, "O_CREAT"), (O_TRUNC, "O_TRUNC"), (O_APPEND, "O_APPEND"), (O_EXCL, "O_EXCL")]
        where flags & Int32(bit) != 0 {
            parts.append(name)
        }
        let text = parts.joined(separator: "|")
        guard flags & O_CREAT != 0 else { return text }
        let octal = String(mode & 0o7777, radix: 8)
        return text + " mode " + String(repeating: "0", count: max(0, 4 - octal.count)) + octal
    }

    /// memfd_create's flags by name (`MFD_CLOEXEC|MFD_ALLOW_SEALING`), nil when none.
    static func memfdFlags(_ flags: UInt64) -> String? {
        let names: [(UInt64, String)] = [
            (0x1, "MFD_CLOEXEC"), (0x2, "MFD_ALLOW_SEALING"), (0x4, "MFD_HUGETLB"), (0x8, "MFD_NOEXEC_SEAL"),
            (0x10, "MFD_EXEC"),
        ]
        let set = names.filter { flags & $0.0 != 0 }.map(\.1)
        return set.isEmpty ? nil : set.joined(separator: "|")
    }

    static func familyName(_ family: Int32) -> String {
        switch family {
        case AF_UNIX: "AF_UNIX"
        case AF_INET: "AF_INET"
        case AF_INET6: "AF_INET6"
        case AF_NETLINK: "AF_NETLINK"
        case AF_PACKET: "AF_PACKET"
        default: "family-\(family)"
        }
    }

    static func socketTypeName(_ type: Int32) -> String {
        let names = [
            1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM", 5: "SOCK_SEQPACKET", 6: "SOCK_DCCP",
        ]
        return names[Int(type)] ?? "type-\(type)"
    }

    /// An IPv6 address as RFC 5952 writes it: lowercase hex groups, the longest run of two or
    /// more zero groups (the first of equals) as `::`, and an IPv4-mapped address's last 32 bits
    /// in dotted form (`::ffff:192.0.2.1`).
    static func ipv6Text(_ bytes: [UInt8]) -> String {
        guard bytes.count == 16 else { return "?" }
        if bytes.prefix(10).allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
            return "::ffff:" + bytes[12...].map(String.init).joined(separator: ".")
        }
        let groups = stride(from: 0, to: 16, by: 2).map { Int(bytes[$0]) << 8 | Int(bytes[$0 + 1]) }
        var best = (start: -1, length: 0)
        var index = 0
        while index < 8 {
            guard groups[index] == 0 else {
                index += 1
                continue
            }
            var end = index
            while end < 8 && groups[end] == 0 { end += 1 }
            if end - index > best.length { best = (index, end - index) }
            index = end
        }
        let text = { (range: ArraySlice<Int>) in range.map { String($0, radix: 16) }.joined(separator: ":") }
        guard best.length >= 2 else { return text(groups[...]) }
        return text(groups[..<best.start]) + "::" + text(groups[(best.start + best.length)...])
    }

    /// A `struct sockaddr` as family, address and port.
    static func socketAddress(_ bytes: [UInt8], syscall: String) -> SandboxReport.NetworkAttempt {
        guard bytes.count >= 2 else { return .init(syscall: syscall, family: "unknown", address: nil, port: nil) }
        let family = Int32(UInt16(bytes[0]) | UInt16(bytes[1]) << 8)
        switch family {
        case AF_UNIX:
            let path = bytes.dropFirst(2)
            let abstract = path.first == 0
            let name = abstract ? path.dropFirst() : path.prefix { $0 != 0 }
            return .init(
                syscall: syscall, family: "AF_UNIX",
                address: (abstract ? "@" : "") + String(decoding: name.prefix { $0 != 0 || abstract }, as: UTF8.self),
                port: nil)
        case AF_INET where bytes.count >= 8:
            return .init(
                syscall: syscall, family: "AF_INET", address: bytes[4..<8].map(String.init).joined(separator: "."),
                port: Int(bytes[2]) << 8 | Int(bytes[3]))
        case AF_INET6 where bytes.count >= 24:
            return .init(
                syscall: syscall, family: "AF_INET6", address: ipv6Text(Array(bytes[8..<24])),
                port: Int(bytes[2]) << 8 | Int(bytes[3]))
        default:
            return .init(syscall: syscall, family: "family-\(family)", address: nil, port: nil)
        }
    }
}
