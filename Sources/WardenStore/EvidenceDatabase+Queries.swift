// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import GRDB
import WardenCore

/// What `files` lists: every filter that is set must match.
public struct FileQuery: Sendable {
    /// Lowercase hex SHA-256 (a prefix of at least 4 characters is accepted).
    public var sha256: String?
    /// An exact path, or a glob when it has `*`, `?` or `[`.
    public var path: String?
    public var state: FileState?
    public var limit: Int?

    public init(sha256: String? = nil, path: String? = nil, state: FileState? = nil, limit: Int? = nil) {
        self.sha256 = sha256
        self.path = path
        self.state = state
        self.limit = limit
    }
}

extension EvidenceDatabase {
    /// File observations matching `query`, oldest first.
    public func files(_ query: FileQuery = FileQuery()) throws -> [FileRecord] {
        var conditions: [String] = []
        var arguments: [any DatabaseValueConvertible] = []
        if let sha = query.sha256?.lowercased() {
            if sha.count == 64 {
                conditions.append("file.sha256 = ?")
                arguments.append(sha)
            } else {
                conditions.append("substr(file.sha256, 1, ?) = ?")
                arguments.append(sha.count)
                arguments.append(sha)
            }
        }
        let glob = query.path.map(PathGlob.init)
        if let path = query.path, glob?.hasWildcards == false {
            conditions.append("file.path = ?")
            arguments.append(Data(path.utf8))
        }
        if let state = query.state {
            conditions.append("file.state = ?")
            arguments.append(state.rawValue)
        }
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let sql = """
            SELECT \(Self.fileWithBlobColumns)
            FROM file LEFT JOIN blob ON blob.sha256 = file.sha256
            \(whereClause) ORDER BY file.id
            """
        let rows = try dbWriter.read { db in try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments)) }
        var records = rows.map { Self.fileRecord($0) }
        if let glob, glob.hasWildcards { records = records.filter { glob.matches($0.path) } }
        if let limit = query.limit { records = Array(records.suffix(limit)) }
        return records
    }

    /// The newest record of the file with this device and inode, if the sensor captured one: the
    /// kernel's own identity of a running executable, checked before a process is signalled.
    public func capturedFile(device: UInt64, inode: UInt64) throws -> FileRecord? {
        try dbWriter.read { db in
            try Row.fetchOne(
                db,
                sql: """
                    SELECT \(Self.fileWithBlobColumns)
                    FROM file LEFT JOIN blob ON blob.sha256 = file.sha256
                    WHERE file.inode = ? AND file.device = ? ORDER BY file.id DESC LIMIT 1
                    """, arguments: [Int64(bitPattern: inode), Int64(bitPattern: device)]
            ).map { Self.fileRecord($0) }
        }
    }

    /// The blob for `sha256`, if one was recorded.
    public func blob(sha256: String) throws -> BlobRecord? {
        try dbWriter.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM blob WHERE sha256 = ?", arguments: [sha256])
            else { return nil }
            let decoder = JSONDecoder()
            return BlobRecord(
                sha256: row["sha256"],
                size: row["size"],
                kind: FileKind(rawValue: row["kind"]) ?? .other,
                elf: (row["elf"] as String?).flatMap { try? decoder.decode(ELFFacts.self, from: Data($0.utf8)) },
                script: (row["script"] as String?).flatMap {
                    try? decoder.decode(ScriptFacts.self, from: Data($0.utf8))
                },
                evidencePath: row["evidencePath"],
                firstSeen: Timestamp(nanosecondsSinceEpoch: row["firstSeen"])
            )
        }
    }

    /// Sensor events, oldest first, optionally of one kind.
    public func sensorEvents(kind: SensorEvent.Kind? = nil) throws -> [SensorEvent] {
        try dbWriter.read { db in
            let rows: [Row]
            if let kind {
                rows = try Row.fetchAll(
                    db, sql: "SELECT * FROM sensor_event WHERE kind = ? ORDER BY id", arguments: [kind.rawValue])
            } else {
                rows = try Row.fetchAll(db, sql: "SELECT * FROM sensor_event ORDER BY id")
            }
            return rows.compactMap { row in
                guard let kind = SensorEvent.Kind(rawValue: row["kind"]) else { return nil }
                return SensorEvent(
                    time: Timestamp(nanosecondsSinceEpoch: row["time"]), kind: kind,
                    mountPoint: (row["mountPoint"] as Data?).map { PathBytes(Array($0)) }, detail: row["detail"])
            }
        }
    }

    /// The file columns, in the order `fileRecord(_: ColumnReader)` reads them.
    static let fileColumns = """
        id, path, mountPoint, fileType, device, inode, size, mode, uid, gid, linkCount, modified, changed, \
        firstSeen, lastSeen, deletedAt, state, kind, reasons, hashStatus, sha256, linkTarget, capture
        """

    /// A file row selected as `fileColumns`, read by position (the correlation of every alert
    /// reads file rows). No blob facts.
    static func fileRecord(_ columns: ColumnReader) -> FileRecord {
        FileRecord(
            id: columns.int64(0), path: PathBytes(columns.bytes(1)),
            mountPoint: columns.optionalBytes(2).map(PathBytes.init),
            fileType: FileType(rawValue: columns.text(3)) ?? .unknown, device: UInt64(bitPattern: columns.int64(4)),
            inode: UInt64(bitPattern: columns.int64(5)), size: columns.int64(6),
            mode: UInt32(truncatingIfNeeded: columns.int64(7)), uid: UInt32(truncatingIfNeeded: columns.int64(8)),
            gid: UInt32(truncatingIfNeeded: columns.int64(9)), linkCount: UInt64(bitPattern: columns.int64(10)),
            modified: Timestamp(nanosecondsSinceEpoch: columns.int64(11)),
            changed: Timestamp(nanosecondsSinceEpoch: columns.int64(12)),
            firstSeen: Timestamp(nanosecondsSinceEpoch: columns.int64(13)),
            lastSeen: Timestamp(nanosecondsSinceEpoch: columns.int64(14)),
            deletedAt: columns.optionalInt64(15).map(Timestamp.init(nanosecondsSinceEpoch:)),
            state: FileState(rawValue: columns.text(16)) ?? .present,
            kind: FileKind(rawValue: columns.text(17)) ?? .other,
            reasons: ExecutableReasons(names: columns.text(18).split(separator: ",").map(String.init)),
            hashStatus: HashStatus(rawValue: columns.text(19)) ?? .unreadable, sha256: columns.optionalText(20),
            elf: nil, script: nil, evidencePath: nil, linkTarget: columns.optionalBytes(21).map(PathBytes.init),
            capture: columns.optionalText(22).flatMap(decodeCapture))
    }

    /// A file row with its blob's facts, as `fileRecord(_: Row)` reads them (`FROM file LEFT JOIN
    /// blob ON blob.sha256 = file.sha256`).
    static let fileWithBlobColumns =
        "file.*, blob.elf AS blobElf, blob.script AS blobScript, blob.evidencePath AS blobEvidence, "
        + "blob.evidenceSkipped AS blobEvidenceSkipped"

    /// A file row, with the blob's facts when the query joined them (`fileWithBlobColumns`).
    static func fileRecord(_ row: Row) -> FileRecord {
        let decoder = JSONDecoder()
        let path: Data = row["path"]
        return FileRecord(
            id: row["id"],
            path: PathBytes(Array(path)),
            mountPoint: (row["mountPoint"] as Data?).map { PathBytes(Array($0)) },
            fileType: FileType(rawValue: row["fileType"]) ?? .unknown,
            device: UInt64(bitPattern: row["device"]),
            inode: UInt64(bitPattern: row["inode"]),
            size: row["size"],
            mode: UInt32(truncatingIfNeeded: row["mode"] as Int64),
            uid: UInt32(truncatingIfNeeded: row["uid"] as Int64),
            gid: UInt32(truncatingIfNeeded: row["gid"] as Int64),
            linkCount: UInt64(bitPattern: row["linkCount"]),
            modified: Timestamp(nanosecondsSinceEpoch: row["modified"]),
            changed: Timestamp(nanosecondsSinceEpoch: row["changed"]),
            firstSeen: Timestamp(nanosecondsSinceEpoch: row["firstSeen"]),
            lastSeen: Timestamp(nanosecondsSinceEpoch: row["lastSeen"]),
            deletedAt: (row["deletedAt"] as Int64?).map(Timestamp.init(nanosecondsSinceEpoch:)),
            state: FileState(rawValue: row["state"]) ?? .present,
            kind: FileKind(rawValue: row["kind"]) ?? .other,
            reasons: ExecutableReasons(names: (row["reasons"] as String).split(separator: ",").map(String.init)),
            hashStatus: HashStatus(rawValue: row["hashStatus"]) ?? .unreadable,
            sha256: row["sha256"],
            elf: (row["blobElf"] as String?).flatMap { try? decoder.decode(ELFFacts.self, from: Data($0.utf8)) },
            script: (row["blobScript"] as String?).flatMap {
                try? decoder.decode(ScriptFacts.self, from: Data($0.utf8))
            },
            evidencePath: row["blobEvidence"],
            linkTarget: (row["linkTarget"] as Data?).map { PathBytes(Array($0)) },
            evidenceSkipped: row["blobEvidenceSkipped"],
            capture: (row["capture"] as String?).flatMap(decodeCapture)
        )
    }

    /// A stored capture; nil for one this version cannot read.
    static func decodeCapture(_ json: String) -> ProcessCapture? {
        try? JSONDecoder().decode(ProcessCapture.self, from: Data(json.utf8))
    }
}
