// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// What a file's content says it is; the contract's `kind` (`elf` | `script` | `other`).
public enum FileKind: String, Sendable, Codable, CaseIterable {
    case elf
    case script
    case other
}

/// The inode type, from `st_mode`; only regular files carry content we classify and hash.
public enum FileType: String, Sendable, Codable, CaseIterable {
    case regular
    case directory
    case symlink
    case fifo
    case socket
    case characterDevice
    case blockDevice
    case unknown

    /// The type encoded in the `S_IFMT` bits of a `st_mode` value.
    public init(mode: UInt32) {
        switch mode & 0o170000 {
        case 0o100000: self = .regular
        case 0o040000: self = .directory
        case 0o120000: self = .symlink
        case 0o010000: self = .fifo
        case 0o140000: self = .socket
        case 0o020000: self = .characterDevice
        case 0o060000: self = .blockDevice
        default: self = .unknown
        }
    }
}

/// Why a file counts as an executable: any one reason is enough.
public struct ExecutableReasons: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Some exec bit (user, group or other) is set in the mode.
    public static let execBit = ExecutableReasons(rawValue: 1 << 0)
    /// The content starts with the ELF magic.
    public static let elf = ExecutableReasons(rawValue: 1 << 1)
    /// The content starts with `#!`.
    public static let shebang = ExecutableReasons(rawValue: 1 << 2)
    /// An interpreter was started with it as its script (`sh FILE`, `python3 FILE`).
    public static let interpreted = ExecutableReasons(rawValue: 1 << 3)

    /// The names used in JSON and the database, in a fixed order.
    public var names: [String] {
        var out: [String] = []
        if contains(.execBit) { out.append("execBit") }
        if contains(.elf) { out.append("elf") }
        if contains(.shebang) { out.append("shebang") }
        if contains(.interpreted) { out.append("interpreted") }
        return out
    }

    /// Parses the names written by `names`; unknown names are ignored.
    public init(names: some Sequence<String>) {
        var value = ExecutableReasons()
        for name in names {
            switch name {
            case "execBit": value.insert(.execBit)
            case "elf": value.insert(.elf)
            case "shebang": value.insert(.shebang)
            case "interpreted": value.insert(.interpreted)
            default: break
            }
        }
        self = value
    }

    /// The reasons a file with this mode and content facts is executable.
    public static func of(mode: UInt32, kind: FileKind) -> ExecutableReasons {
        var reasons = ExecutableReasons()
        if mode & 0o111 != 0 { reasons.insert(.execBit) }
        if kind == .elf { reasons.insert(.elf) }
        if kind == .script { reasons.insert(.shebang) }
        return reasons
    }
}

/// Whether the recorded SHA-256 covers the file's bytes, and if not, why.
public enum HashStatus: String, Sendable, Codable, CaseIterable {
    /// `sha256` is the hash of the whole file as it was when recorded.
    case ok
    /// The file was, or grew while it was read, larger than the configured cap: recorded with
    /// its size, not hashed, and read no further than one byte past the cap.
    case tooLarge
    /// The file could not be read within its time budget: not hashed.
    case timedOut
    /// The file kept changing while it was hashed; `sha256` is the last attempt's.
    case unstable
    /// The file could not be read (an I/O error); the error is in the log.
    case unreadable
    /// Not a regular file: nothing to hash.
    case notRegular
}

/// Where a recorded file is now.
public enum FileState: String, Sendable, Codable, CaseIterable {
    case present
    case deleted
    case quarantined
}
