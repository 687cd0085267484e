// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import SystemPackage
import WardenCore
import WardenLinux

/// Reads the mount table and the memfd sysctl, and remounts with `noexec`.
public enum MountAdvisor {
    /// Advice for every visible tmpfs mount, in mount-table order.
    public static func advice(for entries: [MountInfoEntry]) -> [NoexecAdvice] {
        MountInfoParser.visible(entries).filter(\.isTmpfs).map { NoexecAdvice(facts($0)) }
    }

    public static func facts(_ entry: MountInfoEntry) -> MountFacts {
        MountFacts(
            mountPoint: PathBytes(entry.mountPoint), options: entry.mountOptions, superOptions: entry.superOptions,
            fsType: entry.fsType, source: String(decoding: entry.source, as: UTF8.self))
    }

    /// `vm.memfd_noexec` now, or nil when the kernel has no such sysctl.
    public static func memfdAdvice() -> MemfdAdvice {
        let text = (try? sys_readFile(Array("/proc/sys/vm/memfd_noexec".utf8))).map {
            String(decoding: $0, as: UTF8.self)
        }
        return MemfdAdvice(current: text.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
    }

    /// The visible mount that holds `path`: the one with the longest mount point above it (a
    /// file's recorded root can be a `--watch` directory below the mount itself).
    public static func mount(containing path: PathBytes, in entries: [MountInfoEntry]) -> MountInfoEntry? {
        MountInfoParser.visible(entries)
            .filter { path.isWithin(PathBytes($0.mountPoint)) || path.bytes == $0.mountPoint }
            .max { $0.mountPoint.count < $1.mountPoint.count }
    }

    /// The visible mount at exactly `mountPoint`.
    public static func mount(at mountPoint: PathBytes, in entries: [MountInfoEntry]) -> MountInfoEntry? {
        MountInfoParser.visible(entries).last { $0.mountPoint == mountPoint.bytes }
    }

    /// What a remount did.
    public struct RemountResult: Sendable, Equatable {
        public var mountPoint: PathBytes
        public var before: [String]
        public var after: [String]
        /// Nothing to do: every flag was already set.
        public var alreadySet: Bool
        /// The host's mount namespace could not be read: the remount was made in ours, which may
        /// not be the host's.
        public var namespaceUnverified: Bool = false
    }

    /// Adds `restrictions` to the per-mount flags of the mount at `mountPoint`, keeping the rest
    /// (`MS_REMOUNT|MS_BIND`: the filesystem's own options are untouched), then checks mountinfo.
    public static func remount(_ mountPoint: PathBytes, adding restrictions: Set<MountRestriction>) throws
        -> RemountResult
    {
        // In a mount namespace of our own (systemd sandboxing), the mount to change is the host's.
        let namespace = sys_hostMountNamespace()
        var hostNamespace: FileDescriptor?
        if case .other(let fd) = namespace { hostNamespace = fd }
        defer { if let hostNamespace { sys_close(hostNamespace) } }
        let table = { () throws -> [MountInfoEntry] in
            hostNamespace == nil ? try MountTable.read() : try MountTable.readHost()
        }
        guard let entry = mount(at: mountPoint, in: try table()) else {
            throw SystemCallError(syscall: "mountinfo", path: mountPoint.bytes, errno: .noSuchFileOrDirectory)
        }
        let wanted = restrictions.map(\.rawValue)
        if wanted.allSatisfy(entry.mountOptions.contains) {
            return RemountResult(
                mountPoint: mountPoint, before: entry.mountOptions, after: entry.mountOptions, alreadySet: true)
        }
        var flags: UInt = 0
        for option in entry.mountOptions + wanted { flags |= MountFlag.byOption[option] ?? 0 }
        try sys_remountFlags(mountPoint.bytes, flags: flags, namespace: hostNamespace)
        guard let after = mount(at: mountPoint, in: try table()), wanted.allSatisfy(after.mountOptions.contains)
        else {
            throw SystemCallError(syscall: "mount (verify)", path: mountPoint.bytes, errno: .ioError)
        }
        var result = RemountResult(
            mountPoint: mountPoint, before: entry.mountOptions, after: after.mountOptions, alreadySet: false)
        if case .unknown = namespace { result.namespaceUnverified = true }
        return result
    }
}
