// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import SystemPackage

/// One line of `/proc/self/mountinfo` (proc(5)), paths as exact bytes.
public struct MountInfoEntry: Hashable, Sendable {
    public var mountID: Int
    public var parentID: Int
    public var major: UInt32
    public var minor: UInt32
    /// The path inside the filesystem that is mounted here (not `/` for a bind mount of a subtree).
    public var root: [UInt8]
    public var mountPoint: [UInt8]
    /// Per-mount options (`rw`, `nosuid`, `noexec`, …): the ones before ` - `.
    public var mountOptions: [String]
    /// Propagation tags such as `shared:1` or `master:2`.
    public var optionalFields: [String]
    public var fsType: String
    public var source: [UInt8]
    /// Superblock options (`size=…`, `mode=…`): the ones after the source.
    public var superOptions: [String]

    public var isTmpfs: Bool { fsType == "tmpfs" }
    public var isNoExec: Bool { mountOptions.contains("noexec") }
    public var isNoSuid: Bool { mountOptions.contains("nosuid") }
    public var isNoDev: Bool { mountOptions.contains("nodev") }
    public var isReadOnly: Bool { mountOptions.contains("ro") }
    /// `major:minor`, as `st_dev` would print.
    public var deviceName: String { "\(major):\(minor)" }
    /// The `st_dev` value files on this mount carry (the glibc `makedev` encoding).
    public var device: UInt64 {
        let major = UInt64(self.major)
        let minor = UInt64(self.minor)
        return ((major & 0xffff_f000) << 32) | ((major & 0xfff) << 8) | ((minor & 0xffff_ff00) << 12) | (minor & 0xff)
    }
}

/// Why a mountinfo line could not be parsed.
public struct MountInfoParseError: Error, Hashable, Sendable, CustomStringConvertible {
    public var line: Int
    public var reason: String
    public var description: String { "mountinfo line \(line): \(reason)" }
}

/// Parses `/proc/self/mountinfo` text. Pure: I/O lives in `MountTable`.
public enum MountInfoParser {
    /// Parses every line; a malformed line throws with its number (the kernel never writes one,
    /// so a parse error means we misunderstand the format and must not guess).
    public static func parse(_ text: [UInt8]) throws -> [MountInfoEntry] {
        var entries: [MountInfoEntry] = []
        var lineNumber = 0
        for line in text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            lineNumber += 1
            entries.append(try parseLine(Array(line), number: lineNumber))
        }
        return entries
    }

    static func parseLine(_ line: [UInt8], number: Int) throws -> MountInfoEntry {
        let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false).map(Array.init)
        func fail(_ reason: String) -> MountInfoParseError { MountInfoParseError(line: number, reason: reason) }
        guard let separator = fields.firstIndex(of: [UInt8(ascii: "-")]), separator >= 6 else {
            throw fail("no ' - ' separator after the six leading fields")
        }
        guard fields.count >= separator + 4 else { throw fail("fewer than three fields after ' - '") }
        let text: ([UInt8]) -> String = { String(decoding: $0, as: UTF8.self) }
        guard let mountID = Int(text(fields[0])), let parentID = Int(text(fields[1])) else {
            throw fail("mount or parent id is not a number")
        }
        let device = fields[2].split(separator: UInt8(ascii: ":")).map { UInt32(String(decoding: $0, as: UTF8.self)) }
        guard device.count == 2, let major = device[0], let minor = device[1] else {
            throw fail("device is not major:minor")
        }
        return MountInfoEntry(
            mountID: mountID,
            parentID: parentID,
            major: major,
            minor: minor,
            root: unescape(fields[3]),
            mountPoint: unescape(fields[4]),
            mountOptions: text(fields[5]).split(separator: ",").map(String.init),
            optionalFields: fields[6..<separator].map(text),
            fsType: text(unescape(fields[separator + 1])),
            source: unescape(fields[separator + 2]),
            superOptions: text(unescape(fields[separator + 3])).split(separator: ",").map(String.init)
        )
    }

    /// Undoes the kernel's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` `\`).
    public static func unescape(_ field: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(field.count)
        var index = 0
        while index < field.count {
            if field[index] == UInt8(ascii: "\\"), index + 3 < field.count {
                let digits = field[(index + 1)...(index + 3)]
                if digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "7") }) {
                    let value = digits.reduce(0) { $0 * 8 + Int($1 - UInt8(ascii: "0")) }
                    if value <= 255 {
                        out.append(UInt8(value))
                        index += 4
                        continue
                    }
                }
            }
            out.append(field[index])
            index += 1
        }
        return out
    }

    /// The mounts a path lookup reaches: where several share a mount point (stacked mounts, as
    /// `/dev/shm` often is), only the last one mounted is visible.
    public static func visible(_ entries: [MountInfoEntry]) -> [MountInfoEntry] {
        var lastIndex: [[UInt8]: Int] = [:]
        for (index, entry) in entries.enumerated() { lastIndex[entry.mountPoint] = index }
        return entries.enumerated().filter { lastIndex[$0.element.mountPoint] == $0.offset }.map(\.element)
    }
}

/// Reads the live mount table.
public enum MountTable {
    public static let path: [UInt8] = Array("/proc/self/mountinfo".utf8)

    /// Parses the current `/proc/self/mountinfo`.
    public static func read() throws -> [MountInfoEntry] {
        let fd = try sys_open(path, flags: O_RDONLY, followingSymlinks: true)
        defer { sys_close(fd) }
        return try MountInfoParser.parse(try readAll(fd))
    }

    /// The host's mount table (`/proc/1/mountinfo`): what a remount or an advice is about, even
    /// when this process runs in a mount namespace of its own. Falls back to ours.
    public static func readHost() throws -> [MountInfoEntry] {
        guard let fd = try? sys_open(Array("/proc/1/mountinfo".utf8), flags: O_RDONLY, followingSymlinks: true) else {
            return try read()
        }
        defer { sys_close(fd) }
        return try MountInfoParser.parse(try readAll(fd))
    }

    /// Reads `fd` from its start to end of file.
    public static func readAll(_ fd: FileDescriptor) throws -> [UInt8] {
        try sys_lseek(fd, to: 0)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = try chunk.withUnsafeMutableBytes { (b) throws -> Int in
                try sys_read(fd, into: b) ?? 0
            }
            if count == 0 { break }
            out.append(contentsOf: chunk[0..<count])
        }
        return out
    }
}
