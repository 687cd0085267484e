// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import CSeccomp
import CWardenLinux
@preconcurrency import Glibc
import SystemPackage
import WardenLinux

/// Answers the sandbox's seccomp user notifications on its own thread: reads each call's
/// arguments from the sample's memory, checks the notification is still valid (the process may
/// have changed its memory meanwhile, or died), records it, and always answers CONTINUE. It
/// never decides anything: the filter does.
final class SandboxObserver: @unchecked Sendable {
    // Written by the observer thread only; read after it has finished (`join`).
    private(set) var syscalls: [String: Int] = [:]
    private(set) var network: [SandboxReport.NetworkAttempt] = []
    private(set) var files: [SandboxReport.FileAccess] = []
    private(set) var processes: [SandboxReport.Process] = []
    private(set) var signals: [String] = []
    private(set) var pids: Set<Int32> = []
    private static let eventLimit = 2000
    /// Syscall names by number (libseccomp's lookup allocates).
    private var names: [Int32: String] = [:]

    /// Serves `listener` until every sandboxed process is gone.
    func serve(_ listener: FileDescriptor) {
        var request: UnsafeMutablePointer<seccomp_notif>?
        var response: UnsafeMutablePointer<seccomp_notif_resp>?
        guard seccomp_notify_alloc(&request, &response) == 0, let request, let response else { return }
        defer { seccomp_notify_free(request, response) }
        // Each notification blocks the sample until answered: hand over on one CPU (Linux 6.6+).
        _ = warden_seccomp_sync_wakeup(listener.rawValue)
        while true {
            var fds = [pollfd(fd: listener.rawValue, events: Int16(POLLIN), revents: 0)]
            guard (try? sys_poll(&fds, timeout: 1000)) != nil else { return }
            if fds[0].revents & Int16(POLLIN) == 0 {
                if fds[0].revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 { return }
                continue
            }
            // The kernel wants the request zeroed.
            memset(request, 0, MemoryLayout<seccomp_notif>.size)
            guard seccomp_notify_receive(listener.rawValue, request) == 0 else {
                if errno == ENOENT || errno == EINTR { continue }  // the caller died, or a signal
                return
            }
            let notification = request.pointee
            let name = names[notification.data.nr] ?? {
                let resolved = SandboxFilter.name(of: notification.data.nr)
                names[notification.data.nr] = resolved
                return resolved
            }()
            let event = describe(name, pid: Int32(bitPattern: notification.pid), args: notification.data.args)
            // Only what was read while the notification was still live counts.
            if seccomp_notify_id_valid(listener.rawValue, notification.id) == 0 { record(name, event, pid: Int32(bitPattern: notification.pid)) }
            memset(response, 0, MemoryLayout<seccomp_notif_resp>.size)
            response.pointee.id = notification.id
            response.pointee.flags = UInt32(SECCOMP_USER_NOTIF_FLAG_CONTINUE)
            _ = seccomp_notify_respond(listener.rawValue, response)
        }
    }

    enum Event {
        case file(SandboxReport.FileAccess)
        case network(SandboxReport.NetworkAttempt)
        case process(SandboxReport.Process)
        case signal(String)
        case none
    }

    private func record(_ name: String, _ event: Event, pid: Int32) {
        syscalls[name, default: 0] += 1
        pids.insert(pid)
        switch event {
        case .file(let access) where files.count < Self.eventLimit: files.append(access)
        case .network(let attempt) where network.count < Self.eventLimit: network.append(attempt)
        case .process(let process) where processes.count < Self.eventLimit: processes.append(process)
        case .signal(let text) where signals.count < Self.eventLimit: signals.append(text)
        default: break
        }
    }

    private func describe(_ name: String, pid: Int32, args: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)) -> Event {
        func text(_ address: UInt64) -> String {
            sys_readProcessString(pid, address: address).map { String(decoding: $0, as: UTF8.self) } ?? "?"
        }
        switch name {
        case "execve": return .process(.init(syscall: name, path: text(args.0), pid: pid))
        case "execveat":
            let path = text(args.1)
            return .process(.init(syscall: name, path: path.isEmpty ? "(the sample, by descriptor)" : path, pid: pid))
        case "clone", "fork", "vfork": return .process(.init(syscall: name, path: nil, pid: pid))
        case "open", "creat":
            let flags = name == "creat" ? Int32(O_CREAT | O_WRONLY | O_TRUNC) : Int32(truncatingIfNeeded: args.1)
            let mode = name == "creat" ? args.1 : args.2
            return .file(.init(syscall: name, path: text(args.0), detail: Self.openFlags(flags, mode: mode), created: flags & O_CREAT != 0))
        case "openat", "openat2":
            // openat2 passes struct open_how {flags, mode, resolve} by pointer.
            let how = name == "openat2" ? sys_readProcessMemory(pid, address: args.2, length: 16) : nil
            let field = { (offset: Int) in
                how.map { bytes in bytes.count >= offset + 8 ? bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self) } : 0 } ?? 0
            }
            let flags = Int32(truncatingIfNeeded: name == "openat2" ? field(0) : args.2)
            let mode = name == "openat2" ? field(8) : args.3
            return .file(.init(syscall: name, path: text(args.1), detail: Self.openFlags(flags, mode: mode), created: flags & O_CREAT != 0))
        case "unlink": return .file(.init(syscall: name, path: text(args.0), detail: nil, created: false))
        case "unlinkat": return .file(.init(syscall: name, path: text(args.1), detail: nil, created: false))
        case "rename": return .file(.init(syscall: name, path: text(args.0), detail: "to \(text(args.1))", created: false))
        case "renameat", "renameat2":
            return .file(.init(syscall: name, path: text(args.1), detail: "to \(text(args.3))", created: false))
        case "chmod": return .file(.init(syscall: name, path: text(args.0), detail: String(args.1, radix: 8), created: false))
        case "fchmodat":
            return .file(.init(syscall: name, path: text(args.1), detail: String(args.2, radix: 8), created: false))
        case "fchmod": return .file(.init(syscall: name, path: "fd \(args.0)", detail: String(args.1, radix: 8), created: false))
        case "connect", "sendto":
            let (address, length) = name == "connect" ? (args.1, args.2) : (args.4, args.5)
            guard address != 0, let bytes = sys_readProcessMemory(pid, address: address, length: Int(min(length, 128)))
            else { return .network(.init(syscall: name, family: "unknown", address: nil, port: nil)) }
            return .network(Self.socketAddress(bytes, syscall: name))
        case "kill", "tkill":
            return .signal("\(name)(\(Int32(truncatingIfNeeded: args.0)), \(args.1))")
        case "tgkill":
            return .signal("tgkill(\(Int32(truncatingIfNeeded: args.0)), \(Int32(truncatingIfNeeded: args.1)), \(args.2))")
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
            let groups = stride(from: 8, to: 24, by: 2).map { String(Int(bytes[$0]) << 8 | Int(bytes[$0 + 1]), radix: 16) }
            return .init(syscall: syscall, family: "AF_INET6", address: groups.joined(separator: ":"), port: Int(bytes[2]) << 8 | Int(bytes[3]))
        default:
            return .init(syscall: syscall, family: "family-\(family)", address: nil, port: nil)
        }
    }
}
