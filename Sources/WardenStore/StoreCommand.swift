// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import WardenCore

/// The content facts of one SHA-256: shared by every file observation with those bytes.
public struct BlobRecord: Hashable, Sendable {
    public var sha256: String
    public var size: Int64
    public var kind: FileKind
    public var elf: ELFFacts?
    public var script: ScriptFacts?
    /// The content-addressed evidence copy, relative to nothing: an absolute path.
    public var evidencePath: String?
    public var firstSeen: Timestamp

    public init(
        sha256: String, size: Int64, kind: FileKind, elf: ELFFacts?, script: ScriptFacts?, evidencePath: String?,
        firstSeen: Timestamp
    ) {
        self.sha256 = sha256
        self.size = size
        self.kind = kind
        self.elf = elf
        self.script = script
        self.evidencePath = evidencePath
        self.firstSeen = firstSeen
    }
}

/// A sensor-level happening worth keeping: overflows, rescans, watch-limit fallbacks, mounts.
public struct SensorEvent: Hashable, Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case overflow, rescan, watchLimit, mountAdded, mountRemoved, pinEvicted
    }

    public var time: Timestamp
    public var kind: Kind
    public var mountPoint: PathBytes?
    public var detail: String

    public init(time: Timestamp, kind: Kind, mountPoint: PathBytes?, detail: String) {
        self.time = time
        self.kind = kind
        self.mountPoint = mountPoint
        self.detail = detail
    }
}

/// One change to the store. The sensor sends them in the order it saw things happen, and the
/// writer applies each batch in one transaction, in that order.
public enum StoreCommand: Sendable {
    /// An observed file (and its blob when it was hashed).
    case record(FileRecord, BlobRecord?)
    /// The name is gone (unlinked or moved away): its present observation becomes `deleted`.
    case markDeleted(PathBytes, at: Timestamp)
    /// A directory is gone: every present observation below it becomes `deleted`.
    case markSubtreeDeleted(PathBytes, at: Timestamp)
    /// A rescan of `root` found exactly `present` there: any other present observation below
    /// `root` is `deleted`.
    case reconcile(root: PathBytes, present: Set<PathBytes>, at: Timestamp)
    /// The evidence copy of `sha256` is in place at `path`.
    case evidenceStored(sha256: String, path: String)
    /// No evidence copy of `sha256` was made, and why (the state directory's budget).
    case evidenceSkipped(sha256: String, reason: String)
    /// A Falco alert and what was found for it. Stored once per id: a repeat delivery is ignored.
    case alert(AlertRecord)
    /// A Falco alert still to be correlated: the writer correlates it inside its own transaction
    /// (against every file record committed or applied before it, with no read transaction of
    /// its own), then stores it as `alert` does. The batch's result carries what was found.
    case correlateAndStore(AlertRecord, tmpfsMounts: [PathBytes])
    /// A later look found (other) evidence for a stored alert: replaces its correlations.
    case correlations(alertID: String, CorrelationResult)
    /// A sensor event for the log table.
    case sensorEvent(SensorEvent)
    /// An audit row for a policy action.
    case action(ActionRecord)
    /// An exec the guard answered.
    case exec(ExecRecord)
    /// A finished sandbox run.
    case sandboxRun(SandboxRunRecord)
    /// The file (this device and inode at this path) was moved into the quarantine.
    case quarantined(path: PathBytes, device: UInt64, inode: UInt64)
    /// `output` has taken every event up to `seq`: its cursor moves there, and events every
    /// output has taken leave the outbox.
    case outboxDelivered(output: String, through: Int64)
    /// A YARA scan of the bytes hashing to its `sha256` ended. An answer replaces what was
    /// stored for them; a scan without one (`skipped`, `timeout`, …) replaces no answer.
    case yaraVerdict(YaraVerdict)
}

/// What one batch of commands did, for those who wait on it.
public struct AppliedBatch: Sendable {
    /// The paths of the file records written, in order (the sensor's commit hook).
    public var written: [PathBytes] = []
    /// For each `correlateAndStore` command, by its index in the batch.
    public var alerts: [Int: StoredAlert] = [:]
    /// Committed without the WAL sync its durable commands need (`applyBatch(syncing: false)`).
    public var needsSync = false

    public init() {}
}

/// A `correlateAndStore` alert after its commit.
public struct StoredAlert: Sendable {
    /// The alert with the correlations found for it.
    public var record: AlertRecord
    /// An alert with its id was stored already: this delivery changed nothing.
    public var duplicate: Bool

    public init(record: AlertRecord, duplicate: Bool) {
        self.record = record
        self.duplicate = duplicate
    }
}
