// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation

/// What `/proc/PID/…` files say about a process, parsed from their bytes: pure. Every file is
/// the kernel's, but its contents are the process's choosing where they come from it (its
/// command line, its name in `stat`): nothing here trusts a length or a delimiter it did not find.
public enum ProcessFacts {
    /// `PPid:` and the real uid (`Uid:`'s first field) of `/proc/PID/status`.
    /// One executable mapping of `/proc/PID/maps` backed by a memfd or a deleted file: what a
    /// loader can run without an exec.
    public struct FilelessMapping: Hashable, Sendable {
        /// `start-end` as the kernel prints it: the name of its `/proc/PID/map_files` entry.
        public var range: String
        public var inode: UInt64
        /// The path as printed (`/memfd:name (deleted)`, `/path (deleted)`).
        public var path: [UInt8]
        /// The device of the file it maps.
        public var major: UInt32
        public var minor: UInt32
    }

    /// One line of `/proc/PID/maps`: its range, permissions, device, inode and path (which may
    /// hold spaces); nil for a line that is not one.
    static func mapping(_ line: ArraySlice<UInt8>) -> (
        range: ArraySlice<UInt8>, permissions: ArraySlice<UInt8>, major: UInt32, minor: UInt32, inode: UInt64,
        path: [UInt8]
    )? {
        var fields: [ArraySlice<UInt8>] = []
        var rest = line
        while fields.count < 5 {
            let field = rest.prefix { $0 != UInt8(ascii: " ") }
            guard !field.isEmpty else { break }
            fields.append(field)
            rest = rest.dropFirst(field.count).drop { $0 == UInt8(ascii: " ") }
        }
        guard fields.count == 5, fields[1].count == 4,
            fields[0].allSatisfy({ isHexDigit($0) || $0 == UInt8(ascii: "-") }),
            let inode = UInt64(String(decoding: fields[4], as: UTF8.self))
        else { return nil }
        let device = fields[3].split(separator: UInt8(ascii: ":")).map {
            UInt32(String(decoding: $0, as: UTF8.self), radix: 16)
        }
        guard device.count == 2, let major = device[0], let minor = device[1] else { return nil }
        return (fields[0], fields[1], major, minor, inode, Array(rest))
    }

    /// The device of the file mapped at `path` (the link text of `/proc/PID/exe`): where the
    /// kernel says the executable lives, without opening it.
    public static func mappedDevice(maps: [UInt8], path: [UInt8]) -> (major: UInt32, minor: UInt32)? {
        for line in maps.split(separator: UInt8(ascii: "\n")) {
            if let mapping = mapping(line), mapping.path == path { return (mapping.major, mapping.minor) }
        }
        return nil
    }

    /// `mnt_id:` of `/proc/PID/fdinfo/N`: the mount a descriptor's file is on.
    public static func mountID(fdinfo: [UInt8]) -> Int? {
        for line in fdinfo.split(separator: UInt8(ascii: "\n")) where line.starts(with: Array("mnt_id:".utf8)) {
            return Int(String(decoding: line.dropFirst(7), as: UTF8.self).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// `flags:` of `/proc/PID/fdinfo/N` (octal): how the descriptor was opened.
    public static func openFlags(fdinfo: [UInt8]) -> Int32? {
        for line in fdinfo.split(separator: UInt8(ascii: "\n")) where line.starts(with: Array("flags:".utf8)) {
            return Int32(
                String(decoding: line.dropFirst(6), as: UTF8.self).trimmingCharacters(in: .whitespaces), radix: 8)
        }
        return nil
    }

    /// The file systems a capture may open a file on: local ones, whose opens and reads no
    /// user-space daemon serves. A FUSE file (`fuse`, `fuse.*`, `fuseblk`) lets its daemon hold
    /// an open or a read for as long as it likes; a network file system can stall as long.
    public static let openableFileSystems: Set<String> = [
        "tmpfs", "ramfs", "ext2", "ext3", "ext4", "xfs", "btrfs", "overlay", "squashfs", "erofs", "f2fs", "vfat",
        "exfat", "zfs", "hugetlbfs", "devtmpfs", "iso9660",
    ]

    /// `path` (absolute) with `.` and `..` taken lexically, as a lookup that follows no symlink
    /// takes them; nil for a relative path.
    public static func lexicallyNormalized(_ path: [UInt8]) -> [UInt8]? {
        guard path.first == UInt8(ascii: "/") else { return nil }
        var parts: [ArraySlice<UInt8>] = []
        for part in path.split(separator: UInt8(ascii: "/")) {
            if part.elementsEqual(".".utf8) { continue }
            if part.elementsEqual("..".utf8) {
                _ = parts.popLast()
                continue
            }
            parts.append(part)
        }
        return parts.isEmpty ? [UInt8(ascii: "/")] : parts.flatMap { [UInt8(ascii: "/")] + $0 }
    }

    /// The executable mappings of `maps` (the text of `/proc/PID/maps`) backed by a memfd or a
    /// deleted file, one per inode.
    public static func filelessMappings(maps: [UInt8]) -> [FilelessMapping] {
        var found: [FilelessMapping] = []
        var inodes: Set<UInt64> = []
        for line in maps.split(separator: UInt8(ascii: "\n")) {
            // start-end perms offset dev inode [spaces] path: the path may hold spaces.
            guard let mapping = mapping(line), mapping.permissions.contains(UInt8(ascii: "x")), mapping.inode != 0
            else { continue }
            let path = mapping.path
            let memfd = path.starts(with: Array("/memfd:".utf8))
            let deleted = path.count > 10 && path.suffix(10).elementsEqual(" (deleted)".utf8)
            guard memfd || deleted, inodes.insert(mapping.inode).inserted else { continue }
            found.append(
                FilelessMapping(
                    range: String(decoding: mapping.range, as: UTF8.self), inode: mapping.inode, path: path,
                    major: mapping.major, minor: mapping.minor))
        }
        return found
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
    }

    public static func parentAndUID(status: [UInt8]) -> (ppid: Int32?, uid: UInt32?) {
        var ppid: Int32?
        var uid: UInt32?
        for line in status.split(separator: UInt8(ascii: "\n")) {
            let text = String(decoding: line, as: UTF8.self)
            if text.hasPrefix("PPid:") {
                ppid = Int32(text.dropFirst(5).trimmingCharacters(in: .whitespaces))
            } else if text.hasPrefix("Uid:") {
                uid = text.dropFirst(4).split(whereSeparator: { $0 == "\t" || $0 == " " }).first.flatMap {
                    UInt32($0)
                }
            }
        }
        return (ppid, uid)
    }

    /// The start time in clock ticks after boot: field 22 of `/proc/PID/stat`, counted after the
    /// name's closing parenthesis (the name itself may hold spaces and parentheses).
    public static func startTicks(stat: [UInt8]) -> UInt64? {
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        // After ") ": field 3 (state) is the first; the start time is field 22.
        let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count >= 20 else { return nil }
        return UInt64(String(decoding: fields[19], as: UTF8.self))
    }

    /// The boot time in seconds since the epoch: `btime` of `/proc/stat`.
    public static func bootTime(procStat: [UInt8]) -> Int64? {
        for line in procStat.split(separator: UInt8(ascii: "\n")) where line.starts(with: Array("btime ".utf8)) {
            return Int64(String(decoding: line.dropFirst(6), as: UTF8.self).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// When a process started, from its start ticks, the boot time and the clock's ticks per second.
    public static func started(ticks: UInt64, bootTime: Int64, ticksPerSecond: Int64) -> Timestamp? {
        guard ticksPerSecond > 0, ticks < UInt64(Int64.max) else { return nil }
        let ticks = Int64(ticks)
        let nanoseconds = (ticks % ticksPerSecond) * (1_000_000_000 / ticksPerSecond)
        return Timestamp(seconds: bootTime &+ ticks / ticksPerSecond, nanoseconds: nanoseconds)
    }

    /// The arguments of `/proc/PID/cmdline` (NUL-separated, the last NUL optional), each as it is.
    public static func arguments(commandLine: [UInt8]) -> [[UInt8]] {
        var parts = commandLine.split(separator: 0, omittingEmptySubsequences: false).map(Array.init)
        if parts.last == [] { parts.removeLast() }
        return parts
    }

    /// The container a process runs in, from `/proc/PID/cgroup`: the last 64-hex-digit name
    /// in its cgroup paths (`docker-<id>.scope`, `/docker/<id>`, `cri-containerd-<id>.scope`,
    /// `crio-<id>.scope`, `libpod-<id>.scope`, a kubepods path's last component). Nil on the host.
    public static func containerID(cgroup: [UInt8]) -> String? {
        var found: String?
        var run: [UInt8] = []
        func endRun() {
            if run.count == 64 { found = String(decoding: run, as: UTF8.self) }
            run.removeAll(keepingCapacity: true)
        }
        for byte in cgroup {
            let isHex =
                (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
            if isHex { run.append(byte) } else { endRun() }
        }
        endRun()
        return found
    }
}

/// The script an interpreter was started with, from its command line: pure. Left out by
/// design: a program given on the command line (`sh -c`, `python3 -c`, `perl -e`), read from
/// standard input (`curl … | sh`, `python3 -`), or by module name (`python3 -m`): no file holds it.
public enum InterpretedScript {
    /// The interpreters watched by default (`exec-monitor.interpreters`); a versioned name
    /// (`python3.11`, `php8.2`) counts as its family.
    public static let defaultInterpreters = [
        "sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox", "python", "python2", "python3", "perl", "ruby",
        "php", "node", "nodejs", "lua", "tclsh", "pwsh",
    ]

    /// The interpreter `program` (an executable's path or name) is, when it is one of `list`.
    public static func interpreter(of program: [UInt8], in list: [String]) -> String? {
        let base = String(decoding: program.split(separator: UInt8(ascii: "/")).last ?? [], as: UTF8.self)
        if list.contains(base) { return base }
        // python3.11, php8.2, lua5.4: a listed name followed by a version, the longest that fits
        // (python3.11 is python3's, not python's).
        return list.filter { name in
            base.hasPrefix(name) && base.dropFirst(name.count).allSatisfy { $0.isNumber || $0 == "." }
                && base.count > name.count
        }.max { $0.count < $1.count }
    }

    /// The script argument of `arguments` (argv, argv[0] first) for `interpreter`; nil when the
    /// program does not come from a file.
    public static func scriptArgument(_ arguments: [[UInt8]], interpreter: String) -> [UInt8]? {
        var family = family(of: interpreter)
        var rest = arguments.dropFirst()
        // busybox sh script: the applet first.
        if family == "busybox" {
            guard let applet = rest.first else { return nil }
            family = Self.family(of: String(decoding: applet, as: UTF8.self))
            rest = rest.dropFirst()
        }
        let rules = Self.rules[family] ?? Rules(inline: [], takesValue: [])
        var index = rest.startIndex
        while index < rest.endIndex {
            let argument = String(decoding: rest[index], as: UTF8.self)
            if argument == "--" { return index + 1 < rest.endIndex ? rest[index + 1] : nil }
            if argument == "-" { return nil }  // standard input
            guard argument.hasPrefix("-") || (family == "shell" && argument.hasPrefix("+")) else {
                return rest[index]
            }
            if argument.hasPrefix("--") {
                if rules.inline.contains(argument) { return nil }
                if rules.takesValue.contains(argument) { index += 1 }
                if family == "php" && argument == "--file" { return index + 1 < rest.endIndex ? rest[index + 1] : nil }
                index += 1
                continue
            }
            // A cluster of one-letter options (`-ue`, `-lne`): an inline-program letter anywhere
            // in it means no script file; a letter that takes a value takes the rest of the
            // cluster, or the next argument.
            let letters = Array(argument.dropFirst())
            for (position, letter) in letters.enumerated() {
                let option = "-" + String(letter)
                if family == "php" && option == "-f" {
                    let attached = String(letters[(position + 1)...])
                    if !attached.isEmpty { return Array(attached.utf8) }
                    return index + 1 < rest.endIndex ? rest[index + 1] : nil
                }
                if rules.inline.contains(option) { return nil }
                if rules.takesValue.contains(option) {
                    if position == letters.count - 1 { index += 1 }
                    break
                }
            }
            index += 1
        }
        return nil
    }

    struct Rules {
        /// Options whose value is the program itself: no file.
        var inline: Set<String>
        /// Options that take the next argument as their value.
        var takesValue: Set<String>
    }

    static let rules: [String: Rules] = [
        "shell": Rules(inline: ["-c", "-s"], takesValue: ["-o", "-O", "+o", "+O", "--rcfile", "--init-file"]),
        "python": Rules(inline: ["-c", "-m"], takesValue: ["-W", "-X", "--check-hash-based-pycs"]),
        "perl": Rules(inline: ["-e", "-E"], takesValue: []),
        "ruby": Rules(inline: ["-e"], takesValue: ["-I", "-r", "-C", "-E", "--encoding"]),
        "node": Rules(inline: ["-e", "-p", "--eval", "--print"], takesValue: ["-r", "--require", "--import"]),
        "php": Rules(inline: ["-r", "--run"], takesValue: ["-d", "-c", "-z", "--define"]),
        "lua": Rules(inline: ["-e"], takesValue: ["-l"]),
        "pwsh": Rules(inline: ["-c", "-Command", "-EncodedCommand", "-e"], takesValue: []),
    ]

    static func family(of name: String) -> String {
        let base = name.split(separator: "/").last.map(String.init) ?? name
        let unversioned = String(base.prefix { !$0.isNumber && $0 != "." })
        switch unversioned {
        case "sh", "bash", "dash", "ash", "zsh", "ksh", "mksh": return "shell"
        case "python": return "python"
        case "nodejs", "node": return "node"
        default: return unversioned
        }
    }
}

/// A path as a process named it: pure.
public enum ProcessPath {
    /// N in `/proc/self/fd/N`, `/proc/thread-self/fd/N`, `/proc/<digits>/fd/N` or `/dev/fd/N`.
    public static func descriptorNumber(inPath path: [UInt8]) -> Int32? {
        let parts = path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        func number(_ text: String) -> Int32? { text.allSatisfy(\.isASCII) ? Int32(text) : nil }
        switch parts.count {
        case 4 where parts[0] == "" && parts[1] == "dev" && parts[2] == "fd": return number(parts[3])
        case 5
        where parts[0] == "" && parts[1] == "proc" && parts[3] == "fd"
            && (parts[2] == "self" || parts[2] == "thread-self" || number(parts[2]) != nil):
            return number(parts[4])
        default: return nil
        }
    }
}

/// The interpreters' names as bytes, for the per-exec question "is this one?" without a String.
public struct InterpreterNames: Sendable {
    private let names: Set<[UInt8]>

    public init(_ list: [String]) { names = Set(list.map { Array($0.utf8) }) }

    /// Whether `program`'s base name is listed, or is a listed name followed by a version
    /// (`python3.11`).
    public func matches(_ program: [UInt8]) -> Bool {
        let base = program.split(separator: UInt8(ascii: "/")).last.map(Array.init) ?? []
        if names.contains(base) { return true }
        var trimmed = base[...]
        while let last = trimmed.last,
            last == UInt8(ascii: ".") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(last)
        {
            trimmed = trimmed.dropLast()
        }
        // A listed name may itself end in digits (python3): any prefix of the base from the
        // trimmed one up to the whole base.
        for end in stride(from: trimmed.count, to: base.count, by: 1) where end > 0 {
            if names.contains(Array(base[..<end])) { return true }
        }
        return false
    }
}
