// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// How an executable or script was taken from a running process rather than from a watched
/// directory: what ran it, and the kernel's name for what it ran. Stored with the file record
/// (`capture` in `files --json`).
public struct ProcessCapture: Hashable, Sendable, Codable {
    public enum Kind: String, Hashable, Sendable, Codable, CaseIterable {
        /// The process's executable is a memfd (`/memfd:NAME (deleted)`): a file on no mount.
        case memfd
        /// The process's executable was unlinked (`PATH (deleted)`, link count 0), on any file system.
        case deleted
        /// The process's executable is on a watched tmpfs and had not been recorded.
        case tmpfs
        /// A script an interpreter was started with, from a tmpfs, a memfd or a deleted file.
        case script
        /// Code mapped executable from a memfd or a deleted file, without an exec.
        case mapping
    }

    public var kind: Kind
    /// Where the bytes were read: `/proc/PID/exe`, `/proc/PID/fd/N`, `/proc/PID/map_files/…`,
    /// or `/proc/PID/root` and the script's path.
    public var source: String
    public var pid: Int32
    public var ppid: Int32?
    public var uid: UInt32?
    /// The kernel's name for the process's executable (`/proc/PID/exe`'s link text).
    public var executable: PathBytes
    /// The command line, its arguments as they are (invalid UTF-8 repaired).
    public var commandLine: [String]
    /// When the process started (from `/proc/PID/stat` and the boot time).
    public var started: Timestamp?
    /// The container the process runs in, from its cgroup path (Docker, containerd, CRI-O, Podman).
    public var containerID: String?
    /// For a script: the interpreter that ran it (its executable).
    public var interpreter: String?
    /// The parent's executable (what an allowlist by parent matches).
    public var parentExecutable: PathBytes?
    /// Why it is known benign (an allowlist entry), when it is: recorded, not alarmed.
    public var benign: String?

    /// What was taken, in words.
    public var what: String {
        switch kind {
        case .memfd: "its executable (a memfd)"
        case .deleted: "its executable (a deleted file)"
        case .tmpfs: "its executable (on a watched tmpfs, not recorded before)"
        case .script: "the script its interpreter ran"
        case .mapping: "code it mapped executable from a memfd or deleted file"
        }
    }

    public init(
        kind: Kind, source: String, pid: Int32, ppid: Int32?, uid: UInt32?, executable: PathBytes,
        commandLine: [String], started: Timestamp?, containerID: String?, interpreter: String? = nil,
        parentExecutable: PathBytes? = nil, benign: String? = nil
    ) {
        self.kind = kind
        self.source = source
        self.pid = pid
        self.ppid = ppid
        self.uid = uid
        self.executable = executable
        self.commandLine = commandLine
        self.started = started
        self.containerID = containerID
        self.interpreter = interpreter
        self.parentExecutable = parentExecutable
        self.benign = benign
    }

    enum CodingKeys: String, CodingKey {
        case kind, source, pid, ppid, uid, executable, executableBase64, commandLine, started, containerID
        case interpreter, parentExecutable, benign
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .kind)
        try container.encode(source, forKey: .source)
        try container.encode(pid, forKey: .pid)
        try container.encodeIfPresent(ppid, forKey: .ppid)
        try container.encodeIfPresent(uid, forKey: .uid)
        try container.encode(executable.jsonText, forKey: .executable)
        if !executable.isValidUTF8 { try container.encode(executable.base64, forKey: .executableBase64) }
        try container.encode(commandLine, forKey: .commandLine)
        try container.encodeIfPresent(started?.rfc3339, forKey: .started)
        try container.encodeIfPresent(containerID, forKey: .containerID)
        try container.encodeIfPresent(interpreter, forKey: .interpreter)
        try container.encodeIfPresent(parentExecutable?.jsonText, forKey: .parentExecutable)
        try container.encodeIfPresent(benign, forKey: .benign)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        kind = try container.decode(Kind.self, forKey: .kind)
        source = try container.decode(String.self, forKey: .source)
        pid = try container.decode(Int32.self, forKey: .pid)
        ppid = try container.decodeIfPresent(Int32.self, forKey: .ppid)
        uid = try container.decodeIfPresent(UInt32.self, forKey: .uid)
        if let base64 = try container.decodeIfPresent(String.self, forKey: .executableBase64),
            let bytes = PathBytes(base64: base64)
        {
            executable = bytes
        } else {
            executable = PathBytes(try container.decode(String.self, forKey: .executable))
        }
        commandLine = try container.decode([String].self, forKey: .commandLine)
        started = try container.decodeIfPresent(String.self, forKey: .started).flatMap(Timestamp.init(rfc3339:))
        containerID = try container.decodeIfPresent(String.self, forKey: .containerID)
        interpreter = try container.decodeIfPresent(String.self, forKey: .interpreter)
        parentExecutable = try container.decodeIfPresent(String.self, forKey: .parentExecutable).map {
            PathBytes($0)
        }
        benign = try container.decodeIfPresent(String.self, forKey: .benign)
    }
}

/// What a process's executable is, from the kernel's name for it and its file: pure.
public enum ProcessExecutable {
    /// The suffix the kernel gives the name of a file that was unlinked while in use.
    public static let deletedSuffix = Array(" (deleted)".utf8)
    static let memfdPrefix = Array("/memfd:".utf8)

    /// Which kind of capture an exec calls for: `memfd` and `deleted` from the link text and
    /// link count, `tmpfs` for a file on a watched tmpfs the sensor had not recorded; nil for
    /// an ordinary program.
    public static func captureKind(
        link: PathBytes, linkCount: UInt64, onWatchedTmpfs: Bool, alreadyRecorded: Bool
    ) -> ProcessCapture.Kind? {
        if link.bytes.starts(with: memfdPrefix) { return .memfd }
        if linkCount == 0 || link.bytes.ends(with: deletedSuffix) { return .deleted }
        if onWatchedTmpfs && !alreadyRecorded { return .tmpfs }
        return nil
    }

    /// Whether the link names a memfd or a deleted file: what no watch can see.
    public static func isFileless(_ link: PathBytes) -> Bool {
        link.bytes.starts(with: memfdPrefix) || link.bytes.ends(with: deletedSuffix)
    }

    /// The link text without the kernel's ` (deleted)`.
    public static func withoutDeletedSuffix(_ link: PathBytes) -> PathBytes {
        guard link.bytes.ends(with: deletedSuffix) else { return link }
        return PathBytes(Array(link.bytes.dropLast(deletedSuffix.count)))
    }
}

extension Array where Element == UInt8 {
    fileprivate func ends(with suffix: [UInt8]) -> Bool {
        count >= suffix.count && self[(count - suffix.count)...].elementsEqual(suffix)
    }
}
