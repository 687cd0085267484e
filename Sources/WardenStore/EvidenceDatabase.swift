// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import CWardenSQLite
import Foundation
import GRDB
import GRDBSQLite
import Synchronization
import WardenCore
import WardenLinux

/// The SQLite database in the state directory: file observations, blobs and sensor events.
///
/// WAL mode, `synchronous=NORMAL` (a commit appends to the WAL without an fsync; the checkpoint
/// syncs; alert commits are FULL), migrations from version 1. The file and its WAL are mode 0600.
public final class EvidenceDatabase: Sendable {
    /// How a process uses the database, which decides its connections.
    public enum Connections: Sendable {
        /// GRDB's pool: one writer and readers beside it (the agent, `ingest`).
        case pool
        /// One connection, for a command that reads or writes one thing and exits. It opens in
        /// about half the time: GRDB's pool, on every open that finds the WAL empty (which is how
        /// the last connection leaves it), commits a throwaway table (its issue 102: a WAL must
        /// exist before its readers open), with an fsync, and looks up the WAL's owner in the
        /// password and group databases on the way.
        case single
    }

    public let path: String
    let dbWriter: any DatabaseWriter
    let connections: Connections
    private let closed = Atomic<Bool>(false)
    /// The outbox this process's writes queue events in (nil: none).
    let outboxSlot = Mutex<Outbox?>(nil)

    /// Opens (creating if needed) and migrates the database at `path`.
    public init(path: String, connections: Connections = .pool) throws {
        self.path = path
        self.connections = connections
        let configuration = Self.configuration(connections)
        let previousMask = umask(0o077)
        defer { umask(previousMask) }
        // Processes opening a new database at once (parallel `shmwarden sandbox` runs on a
        // fresh state directory) take turns: GRDB reads which migrations are applied before it
        // applies each in a transaction of its own, so two of them both created the tables and
        // the second failed ("table already exists"), as did a WAL switch under a writer. The
        // lock is on the directory holding the database, for the open and migration only.
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let lock = try? sys_open(Array((directory.isEmpty ? "." : directory).utf8), flags: O_RDONLY | O_DIRECTORY)
        if let lock { try? sys_lockExclusive(lock) }
        defer { lock.map(sys_close) }
        switch connections {
        case .pool:
            dbWriter = try DatabasePool(path: path, configuration: configuration)
        case .single:
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            // Already WAL (the mode is stored in the file): a read of the header. A database
            // created by a command gets the mode the agent's pool expects.
            try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = WAL") }
            dbWriter = queue
        }
        try Self.migrator.migrate(dbWriter)
        for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
            chmod(path + suffix, 0o600)
        }
    }

    /// Every connection's settings (the agent's pool, a command's one connection; the WAL
    /// checkpointer's is a `.single` one, which never checkpoints as it closes).
    static func configuration(_ connections: Connections) -> Configuration {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // Checkpoints fsync the database file. Left automatic, they run inside whichever
            // commit crosses the threshold, before its callers hear of it; the store writer
            // runs `checkpoint()` between batches instead.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
            // The -wal and -shm files stay when the last connection closes: each command-line
            // run (`sandbox`, `files`, …) otherwise deleted them on exit and the next one
            // created and zero-filled them again (0.5-1 ms of a 12-13 ms `shmwarden sandbox`).
            var persist: CInt = 1
            let code = withUnsafeMutablePointer(to: &persist) {
                sqlite3_file_control(db.sqliteConnection, nil, SQLITE_FCNTL_PERSIST_WAL, $0)
            }
            guard code == SQLITE_OK else { throw DatabaseError(resultCode: ResultCode(rawValue: code)) }
            // With a persistent WAL, a size limit is what makes the last connection's closing
            // checkpoint truncate the WAL to zero. Without it the WAL stayed full, the next
            // command's open rebuilt its index from every frame (and forgot they were already
            // checkpointed), appended after them, and every run read a longer WAL (2 MB after
            // 130 `sandbox` runs). The agent's restarted WAL is cut back to this size too.
            try db.execute(sql: "PRAGMA journal_size_limit = \(Self.walSizeLimit)")
            // A command's close checkpoints only a WAL past `closingCheckpointBytes` (deinit):
            // SQLite's own closing checkpoint cost a command three fsyncs even when it had
            // written one row.
            if connections == .single { _ = warden_sqlite_checkpoint_on_close(db.sqliteConnection, 0) }
        }
        configuration.busyMode = .timeout(10)
        return configuration
    }

    deinit {
        if !closed.load(ordering: .acquiring) { checkpointOnCloseIfLarge() }
    }

    /// Closes a command's connection now, as releasing it would (a large WAL checkpointed as it
    /// closes), for a command that exits right after with the database still referenced:
    /// releasing it disposes of GRDB's dispatch queue, which started two threads of the dispatch
    /// pool just before the exit.
    public func close() throws {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        checkpointOnCloseIfLarge()
        if let queue = dbWriter as? DatabaseQueue { try queue.close() }
    }

    /// A command's connection leaves a small WAL for the next opener to read back (a few frames:
    /// well under a millisecond) and lets SQLite checkpoint a larger one as it closes (if it is
    /// the last connection: never under a running agent), so commands run back to back never
    /// let the WAL grow.
    private func checkpointOnCloseIfLarge() {
        // stat(2), not FileManager's attributes: those name the file's owner and group, and
        // looking them up read /etc/nsswitch.conf, /etc/passwd and /etc/group on every command.
        var status = stat()
        guard connections == .single, stat(path + "-wal", &status) == 0,
            Int(status.st_size) > Self.closingCheckpointBytes
        else { return }
        try? dbWriter.writeWithoutTransaction { db in _ = warden_sqlite_checkpoint_on_close(db.sqliteConnection, 1) }
    }

    /// The WAL size above which a command's close checkpoints it.
    public static let closingCheckpointBytes = 256 << 10

    /// What a checkpointed WAL is truncated to (bytes); zero when the last connection closes.
    static let walSizeLimit = 64 << 20

    /// Schema history. Never edit a shipped migration: add the next one.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE blob (
                        sha256 TEXT PRIMARY KEY NOT NULL,
                        size INTEGER NOT NULL,
                        kind TEXT NOT NULL,
                        elf TEXT,
                        script TEXT,
                        evidencePath TEXT,
                        firstSeen INTEGER NOT NULL
                    );
                    CREATE TABLE file (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        path BLOB NOT NULL,
                        mountPoint BLOB,
                        fileType TEXT NOT NULL,
                        device INTEGER NOT NULL,
                        inode INTEGER NOT NULL,
                        size INTEGER NOT NULL,
                        mode INTEGER NOT NULL,
                        uid INTEGER NOT NULL,
                        gid INTEGER NOT NULL,
                        linkCount INTEGER NOT NULL,
                        modified INTEGER NOT NULL,
                        changed INTEGER NOT NULL,
                        firstSeen INTEGER NOT NULL,
                        lastSeen INTEGER NOT NULL,
                        deletedAt INTEGER,
                        state TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        reasons TEXT NOT NULL,
                        hashStatus TEXT NOT NULL,
                        sha256 TEXT REFERENCES blob(sha256),
                        linkTarget BLOB
                    );
                    CREATE INDEX file_path ON file(path, state);
                    CREATE INDEX file_sha256 ON file(sha256);
                    CREATE INDEX file_inode ON file(device, inode);
                    CREATE INDEX file_mount_state ON file(mountPoint, state);
                    CREATE TABLE sensor_event (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        time INTEGER NOT NULL,
                        kind TEXT NOT NULL,
                        mountPoint BLOB,
                        detail TEXT NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v2-alerts") { db in
            try db.execute(
                sql: """
                    CREATE TABLE alert (
                        id TEXT PRIMARY KEY NOT NULL,
                        rule TEXT NOT NULL,
                        priority INTEGER NOT NULL,
                        time INTEGER NOT NULL,
                        hostname TEXT,
                        source TEXT,
                        internal INTEGER NOT NULL,
                        raw TEXT NOT NULL,
                        receivedAt INTEGER NOT NULL,
                        noEvidenceReason TEXT
                    );
                    CREATE INDEX alert_time ON alert(time);
                    CREATE TABLE correlation (
                        alertId TEXT NOT NULL REFERENCES alert(id),
                        fileId INTEGER NOT NULL REFERENCES file(id),
                        sha256 TEXT,
                        path BLOB NOT NULL,
                        matchedBy TEXT NOT NULL,
                        confidence REAL NOT NULL,
                        PRIMARY KEY (alertId, fileId)
                    );
                    CREATE INDEX correlation_file ON correlation(fileId);
                    """)
        }
        migrator.registerMigration("v3-internal-alert-time") { db in
            // The event-drop caveat looks for internal alerts near each alert's time; without this
            // index that is a scan of every alert in the window (quadratic over a burst).
            try db.execute(sql: "CREATE INDEX alert_internal_time ON alert(internal, time)")
        }
        migrator.registerMigration("v4-actions") { db in
            try db.execute(
                sql: """
                    CREATE TABLE action (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        time INTEGER NOT NULL,
                        alertId TEXT,
                        fileId INTEGER,
                        rule TEXT NOT NULL,
                        action TEXT NOT NULL,
                        mode TEXT NOT NULL,
                        outcome TEXT NOT NULL,
                        target TEXT,
                        detail TEXT NOT NULL,
                        errno INTEGER
                    );
                    CREATE INDEX action_alert ON action(alertId);
                    """)
        }
        migrator.registerMigration("v5-execs") { db in
            try db.execute(
                sql: """
                    CREATE TABLE exec (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        time INTEGER NOT NULL,
                        pid INTEGER NOT NULL,
                        ppid INTEGER,
                        uid INTEGER,
                        path BLOB NOT NULL,
                        sha256 TEXT,
                        device INTEGER NOT NULL,
                        inode INTEGER NOT NULL,
                        verdict TEXT NOT NULL,
                        wouldBe TEXT NOT NULL,
                        mode TEXT NOT NULL,
                        rule TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        cached INTEGER NOT NULL,
                        decisionNanoseconds INTEGER NOT NULL
                    );
                    CREATE INDEX exec_pid_time ON exec(pid, time);
                    """)
        }
        migrator.registerMigration("v6-sandbox") { db in
            try db.execute(
                sql: """
                    CREATE TABLE sandbox_run (
                        id TEXT PRIMARY KEY NOT NULL,
                        time INTEGER NOT NULL,
                        sha256 TEXT NOT NULL,
                        fileId INTEGER,
                        alertId TEXT,
                        verdict TEXT NOT NULL,
                        report TEXT NOT NULL
                    );
                    CREATE INDEX sandbox_run_sha256 ON sandbox_run(sha256);
                    """)
        }
        migrator.registerMigration("v7-exec-held") { db in
            try db.execute(sql: "ALTER TABLE exec ADD COLUMN held INTEGER NOT NULL DEFAULT 1")
        }
        migrator.registerMigration("v8-file-inode") { db in
            // Alerts name inodes without their device (proc.exe_ino, fd.ino): the (device, inode)
            // index cannot serve that, and every such alert scanned the whole file table.
            try db.execute(sql: "CREATE INDEX file_inode_alone ON file(inode)")
        }
        migrator.registerMigration("v9-alert-seq") { db in
            // Correlations keyed by the alert's integer sequence instead of its id: ids are
            // hashes or uuids, so the (alertId, fileId) key put every alert's correlation on a
            // random page of its index (measured: 13% of the HTTP intake's throughput). The
            // sequence is an explicit INTEGER PRIMARY KEY, which VACUUM never renumbers.
            try db.execute(
                sql: """
                    CREATE TABLE alert_v9 (
                        seq INTEGER PRIMARY KEY,
                        id TEXT NOT NULL UNIQUE,
                        rule TEXT NOT NULL,
                        priority INTEGER NOT NULL,
                        time INTEGER NOT NULL,
                        hostname TEXT,
                        source TEXT,
                        internal INTEGER NOT NULL,
                        raw TEXT NOT NULL,
                        receivedAt INTEGER NOT NULL,
                        noEvidenceReason TEXT
                    );
                    INSERT INTO alert_v9 (seq, id, rule, priority, time, hostname, source, internal, raw, receivedAt,
                        noEvidenceReason)
                        SELECT rowid, id, rule, priority, time, hostname, source, internal, raw, receivedAt, noEvidenceReason
                        FROM alert ORDER BY rowid;
                    CREATE TABLE correlation_v9 (
                        alertSeq INTEGER NOT NULL REFERENCES alert(seq),
                        fileId INTEGER NOT NULL REFERENCES file(id),
                        sha256 TEXT,
                        path BLOB NOT NULL,
                        matchedBy TEXT NOT NULL,
                        confidence REAL NOT NULL,
                        PRIMARY KEY (alertSeq, fileId)
                    ) WITHOUT ROWID;
                    INSERT INTO correlation_v9 (alertSeq, fileId, sha256, path, matchedBy, confidence)
                        SELECT alert_v9.seq, correlation.fileId, correlation.sha256, correlation.path,
                            correlation.matchedBy, correlation.confidence
                        FROM correlation JOIN alert_v9 ON alert_v9.id = correlation.alertId;
                    DROP TABLE correlation;
                    DROP TABLE alert;
                    ALTER TABLE alert_v9 RENAME TO alert;
                    ALTER TABLE correlation_v9 RENAME TO correlation;
                    CREATE INDEX alert_time ON alert(time);
                    CREATE INDEX alert_internal_time ON alert(internal, time);
                    CREATE INDEX correlation_file ON correlation(fileId);
                    """)
        }
        migrator.registerMigration("v10-no-alert-time-index") { db in
            // Every alert insert kept an index on time that only the hourly retention read;
            // retention reads the (internal, time) index instead (one index, and one WAL page
            // per group commit, fewer).
            try db.execute(sql: "DROP INDEX alert_time")
        }
        migrator.registerMigration("v11-alert-sender") { db in
            // Who sent each alert: an unauthenticated one may only be recorded and advised on.
            try db.execute(
                sql: """
                    ALTER TABLE alert ADD COLUMN authenticated INTEGER NOT NULL DEFAULT 1;
                    ALTER TABLE alert ADD COLUMN sender TEXT;
                    """)
        }
        migrator.registerMigration("v12-evidence-skipped") { db in
            // Why an executable has no evidence copy (the state directory's budget).
            try db.execute(sql: "ALTER TABLE blob ADD COLUMN evidenceSkipped TEXT")
        }
        migrator.registerMigration("v13-process-capture") { db in
            // Bytes taken from a running process (a memfd, a deleted executable, a script), and
            // the process they came from, found by pid when an alert names it.
            try db.execute(
                sql: """
                    ALTER TABLE file ADD COLUMN capture TEXT;
                    ALTER TABLE file ADD COLUMN capturePid INTEGER;
                    CREATE INDEX file_capture_pid ON file(capturePid) WHERE capturePid IS NOT NULL;
                    """)
        }
        migrator.registerMigration("v14-outbox") { db in
            // Events for the outputs (Falcosidekick), each a row naming its record; the random
            // instance that, with an event's number, makes its id; each output's delivery cursor;
            // and the executables whose event waits for their evidence copy.
            try db.execute(
                sql: """
                    CREATE TABLE outbox (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, priority INTEGER NOT NULL,
                        time INTEGER NOT NULL, ref INTEGER, note TEXT);
                    CREATE TABLE outbox_instance (id TEXT NOT NULL);
                    CREATE TABLE outbox_cursor (output TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
                    CREATE TABLE outbox_awaiting_evidence (fileId INTEGER PRIMARY KEY, sha256 TEXT NOT NULL);
                    CREATE INDEX outbox_awaiting_evidence_sha256 ON outbox_awaiting_evidence(sha256);
                    """)
            try db.execute(
                sql: "INSERT INTO outbox_instance (id) VALUES (?)",
                arguments: [String(UInt64.random(in: 1...UInt64.max), radix: 16)])
        }
        migrator.registerMigration("v15-yara") { db in
            // The YARA verdict on each content (by SHA-256) under the rule set that gave it;
            // `matches` is the JSON array of the rules that matched.
            try db.execute(
                sql: """
                    CREATE TABLE yara_scan (
                        sha256 TEXT PRIMARY KEY, ruleset TEXT NOT NULL, status TEXT NOT NULL,
                        matched INTEGER NOT NULL, matches TEXT NOT NULL, scannedBytes INTEGER NOT NULL,
                        size INTEGER NOT NULL, time INTEGER NOT NULL, durationNs INTEGER NOT NULL, detail TEXT
                    ) WITHOUT ROWID;
                    """)
        }
        return migrator
    }

    /// Copies the WAL back into the database file, on the writer's connection: no commit can
    /// append meanwhile, so the checkpoint completes and the next commit restarts the WAL from
    /// its beginning (PASSIVE otherwise: it never waits for readers). The store writer calls it
    /// between batches, and with `truncate` when closing.
    public func checkpoint(truncate: Bool = false) throws {
        try dbWriter.writeWithoutTransaction { db in _ = try db.checkpoint(truncate ? .truncate : .passive) }
    }

    /// The schema versions applied, oldest first.
    public func appliedMigrations() throws -> [String] {
        try dbWriter.read { db in try Self.migrator.appliedMigrations(db) }
    }

    /// SQLite's `PRAGMA integrity_check`: `["ok"]`, or what is wrong.
    public func integrityCheck() throws -> [String] {
        try dbWriter.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
    }

    /// The journal mode in force (`wal` when all is well).
    public func journalMode() throws -> String {
        try dbWriter.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }
}
