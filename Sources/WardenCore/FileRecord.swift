// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// One observation of a file on a watched tmpfs: where it was, what it was, and what became of it.
///
/// This is the `file record` of the JSON contract in DESIGN.md. A path that is rewritten with
/// new content, or a hard link under a second name, is a new observation; the old one keeps the
/// hash of the bytes it had.
public struct FileRecord: Hashable, Sendable {
    /// The store's row id; nil until stored.
    public var id: Int64?
    public var path: PathBytes
    /// The watched mount (or `--watch` root) the file was found under.
    public var mountPoint: PathBytes?
    public var fileType: FileType
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64
    /// The full `st_mode` (type and permission bits).
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var linkCount: UInt64
    public var modified: Timestamp
    public var changed: Timestamp
    public var firstSeen: Timestamp
    public var lastSeen: Timestamp
    public var deletedAt: Timestamp?
    public var state: FileState
    public var kind: FileKind
    public var reasons: ExecutableReasons
    public var hashStatus: HashStatus
    /// Lowercase hex SHA-256 of the content, when it was hashed.
    public var sha256: String?
    public var elf: ELFFacts?
    public var script: ScriptFacts?
    /// The content-addressed evidence copy, when one was kept.
    public var evidencePath: String?
    /// Why no evidence copy was made (`budget: …`), when none was.
    public var evidenceSkipped: String?
    /// For a symlink: its target, read and never followed.
    public var linkTarget: PathBytes?
    /// For bytes taken from a running process (a memfd, a deleted executable, a script an
    /// interpreter ran): the process and how they were taken.
    public var capture: ProcessCapture?
    /// What the YARA rules found in its bytes (by its SHA-256), when they were scanned.
    public var yara: YaraVerdict?

    public init(
        id: Int64? = nil, path: PathBytes, mountPoint: PathBytes?, fileType: FileType, device: UInt64,
        inode: UInt64, size: Int64, mode: UInt32, uid: UInt32, gid: UInt32, linkCount: UInt64,
        modified: Timestamp, changed: Timestamp, firstSeen: Timestamp, lastSeen: Timestamp,
        deletedAt: Timestamp? = nil, state: FileState = .present, kind: FileKind, reasons: ExecutableReasons,
        hashStatus: HashStatus, sha256: String?, elf: ELFFacts? = nil, script: ScriptFacts? = nil,
        evidencePath: String? = nil, linkTarget: PathBytes? = nil, evidenceSkipped: String? = nil,
        capture: ProcessCapture? = nil
    ) {
        self.capture = capture
        self.evidenceSkipped = evidenceSkipped
        self.id = id
        self.path = path
        self.mountPoint = mountPoint
        self.fileType = fileType
        self.device = device
        self.inode = inode
        self.size = size
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.linkCount = linkCount
        self.modified = modified
        self.changed = changed
        self.firstSeen = firstSeen
        self.lastSeen = lastSeen
        self.deletedAt = deletedAt
        self.state = state
        self.kind = kind
        self.reasons = reasons
        self.hashStatus = hashStatus
        self.sha256 = sha256
        self.elf = elf
        self.script = script
        self.evidencePath = evidencePath
        self.linkTarget = linkTarget
    }

    /// `true` when any reason makes it an executable (exec bit, ELF magic or `#!`).
    public var isExecutable: Bool { !reasons.isEmpty }

    /// The permission bits as four octal digits, e.g. `0755`.
    public var permissionsOctal: String {
        let text = String(mode & 0o7777, radix: 8)
        return String(repeating: "0", count: max(0, 4 - text.count)) + text
    }
}

extension FileRecord {
    /// `stored`, `pending` (hashed, the copy not made yet), `skipped, <why>`, or `none` (no
    /// hash of the whole file to keep a copy of).
    public var evidenceState: String {
        if evidencePath != nil { return "stored" }
        if let evidenceSkipped { return "skipped, \(evidenceSkipped)" }
        return sha256 != nil && hashStatus == .ok ? "pending" : "none"
    }
}

extension FileRecord: Encodable {
    enum CodingKeys: String, CodingKey {
        case id, path, pathBase64, mountPoint, fileType, device, inode, size, mode, modeOctal, uid, gid
        case linkCount, modified, changed, firstSeen, lastSeen, deletedAt, state, kind, executableReasons
        case hashStatus, sha256, elf, script, evidencePath, evidence, linkTarget, linkTargetBase64, capture, yara
    }

    /// Encodes the contract's keys; a path that is not UTF-8 gets `pathBase64` with the exact bytes.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(id, forKey: .id)
        try container.encode(path.jsonText, forKey: .path)
        if !path.isValidUTF8 { try container.encode(path.base64, forKey: .pathBase64) }
        try container.encodeIfPresent(mountPoint?.jsonText, forKey: .mountPoint)
        try container.encode(fileType, forKey: .fileType)
        try container.encode(device, forKey: .device)
        try container.encode(inode, forKey: .inode)
        try container.encode(size, forKey: .size)
        try container.encode(mode & 0o7777, forKey: .mode)
        try container.encode(permissionsOctal, forKey: .modeOctal)
        try container.encode(uid, forKey: .uid)
        try container.encode(gid, forKey: .gid)
        try container.encode(linkCount, forKey: .linkCount)
        try container.encode(modified.rfc3339, forKey: .modified)
        try container.encode(changed.rfc3339, forKey: .changed)
        try container.encode(firstSeen.rfc3339, forKey: .firstSeen)
        try container.encode(lastSeen.rfc3339, forKey: .lastSeen)
        try container.encodeIfPresent(deletedAt?.rfc3339, forKey: .deletedAt)
        try container.encode(state, forKey: .state)
        try container.encode(kind, forKey: .kind)
        try container.encode(reasons.names, forKey: .executableReasons)
        try container.encode(hashStatus, forKey: .hashStatus)
        try container.encode(sha256, forKey: .sha256)
        try container.encodeIfPresent(elf, forKey: .elf)
        try container.encodeIfPresent(script, forKey: .script)
        try container.encode(evidencePath, forKey: .evidencePath)
        try container.encode(evidenceState, forKey: .evidence)
        if let linkTarget {
            try container.encode(linkTarget.jsonText, forKey: .linkTarget)
            if !linkTarget.isValidUTF8 { try container.encode(linkTarget.base64, forKey: .linkTargetBase64) }
        }
        try container.encodeIfPresent(capture, forKey: .capture)
        try container.encodeIfPresent(yara, forKey: .yara)
    }
}
