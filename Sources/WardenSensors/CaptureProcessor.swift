// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Logging
import SystemPackage
import WardenCore
import WardenLinux
import WardenStore
import WardenYara

/// Turns capture jobs into store commands: classify by content, hash, keep evidence, record.
///
/// - Important: Not thread-safe; one capture thread owns it (and its hasher and vault), which
///   also keeps the commands in the order the events happened.
final class CaptureProcessor {
    private let configuration: SensorConfiguration
    /// Takes ownership of descriptors whose bytes must be kept as evidence.
    private let keepEvidence: (EvidenceJob) -> Void
    /// Queues a YARA scan of a hashed executable's bytes (the descriptor stays the caller's).
    private let scan: ((FileDescriptor, _ sha256: String, PathBytes) -> Void)?
    private let hasher: FileHasher
    private let metrics: SensorMetrics
    private let logger: Logger
    private let emit: (StoreCommand) -> Void
    private let now: () -> Timestamp
    /// The content version last recorded per path, so an unchanged file is not hashed twice.
    private var recorded: [PathBytes: ContentVersion] = [:]
    private static let recordedLimit = 1_000_000

    init(
        configuration: SensorConfiguration, metrics: SensorMetrics, logger: Logger,
        now: @escaping () -> Timestamp, emit: @escaping (StoreCommand) -> Void,
        keepEvidence: @escaping (EvidenceJob) -> Void,
        scan: ((FileDescriptor, _ sha256: String, PathBytes) -> Void)? = nil
    ) {
        self.scan = scan
        self.configuration = configuration
        self.keepEvidence = keepEvidence
        self.hasher = FileHasher(maxAttempts: configuration.maxHashAttempts)
        self.metrics = metrics
        self.logger = logger
        self.now = now
        self.emit = emit
    }

    func process(_ job: CaptureJob) {
        switch job {
        case .file(let path, let root, let pinned):
            if let pinned {
                capture(path, root: root, pinned: pinned)
            } else {
                captureByPath(path, root: root)
            }
        case .special(let path, let root, let status):
            recordSpecial(path, root: root, status: status)
        case .deleted(let path):
            // The remembered version stays: a later event for the same unlinked inode (an exec
            // or close seen after the unlink) must not record it a second time. A new file at
            // this path has another inode or ctime, so it is still recorded.
            emit(.markDeleted(path, at: now()))
        case .subtreeDeleted(let path):
            emit(.markSubtreeDeleted(path, at: now()))
        case .rescan(let root, let files, let reconcile):
            var found = Set<PathBytes>()
            for path in files where captureByPath(path, root: root) { found.insert(path) }
            if reconcile {
                recorded = recorded.filter { !$0.key.isWithin(root) || found.contains($0.key) }
                emit(.reconcile(root: root, present: found, at: now()))
            }
        case .event(let event):
            emit(.sensorEvent(event))
        }
    }

    /// Pins and captures `path`; returns whether something exists there.
    @discardableResult
    private func captureByPath(_ path: PathBytes, root: PathBytes) -> Bool {
        switch FilePinner.pin(path) {
        case .regular(let pinned):
            capture(path, root: root, pinned: pinned)
            return true
        case .special(let status):
            recordSpecial(path, root: root, status: status)
            return true
        case .vanished:
            metrics.add(.vanishedBeforeOpen)
            return false
        case .failed(let error):
            metrics.add(.captureErrors)
            logger.warning("cannot open file", metadata: ["file.path": "\(path)", "error": "\(error)"])
            return true
        }
    }

    private func capture(_ path: PathBytes, root: PathBytes, pinned: PinnedFile) {
        let fd = pinned.descriptor
        var handedOver = false
        defer { if !handedOver { sys_close(fd) } }
        do {
            var status = try sys_fstat(fd)
            if recorded[path] == status.contentVersion { return }
            let classification = ContentClassifier.classify(DescriptorByteSource(fd: fd))
            let reasons = ExecutableReasons.of(mode: status.mode, kind: classification.kind)
            guard !reasons.isEmpty else {
                // Not an executable. If an executable was recorded under this name, its bytes are gone.
                if recorded.removeValue(forKey: path) != nil { emit(.markDeleted(path, at: now())) }
                return
            }
            let hash = try hasher.hash(
                fd, sizeCap: configuration.hashSizeCap, seconds: configuration.hashTimeBudgetSeconds)
            if hash.attempts > 1 { metrics.add(.rehashes, hash.attempts - 1) }
            status = hash.fileStatus
            metrics.add(.bytesHashed, hash.sha256 == nil ? 0 : Int(status.size))
            let seen = now()
            var record = fileRecord(path: path, root: root, status: status, seen: seen)
            record.kind = classification.kind
            record.reasons = reasons
            record.hashStatus = hash.status
            record.sha256 = hash.sha256
            record.elf = classification.elf
            record.script = classification.script
            let blob = hash.sha256.map {
                BlobRecord(
                    sha256: $0, size: status.size, kind: classification.kind, elf: classification.elf,
                    script: classification.script, evidencePath: nil, firstSeen: seen)
            }
            remember(path, status)
            metrics.add(.filesRecorded)
            metrics.add(.executablesRecorded)
            // Queued before the record goes out: whoever hears of the record (a policy that
            // looks at YARA matches) finds its scan on the way.
            if let scan, let sha = hash.sha256, hash.status == .ok { scan(fd, sha, path) }
            // The record commits now; the evidence copy follows from the same descriptor, which
            // the evidence keeper holds until the copy is verified and in place.
            emit(.record(record, blob))
            metrics.captureLatency.observe(seconds: Double(sys_monotonicNanoseconds() - pinned.openedAt) / 1e9)
            if let sha = hash.sha256, hash.status == .ok {
                keepEvidence(EvidenceJob(descriptor: fd, sha256: sha, size: status.size, path: path))
                handedOver = true
            }
            logger.info(
                "executable recorded",
                metadata: [
                    "file.path": "\(path)", "file.sha256": "\(hash.sha256 ?? "-")",
                    "file.kind": "\(classification.kind)",
                    "file.hash_status": "\(hash.status)",
                ])
        } catch {
            metrics.add(.captureErrors)
            logger.warning("cannot capture file", metadata: ["file.path": "\(path)", "error": "\(error)"])
        }
    }

    private func recordSpecial(_ path: PathBytes, root: PathBytes, status: FileStatus) {
        if recorded[path] == status.contentVersion { return }
        var record = fileRecord(path: path, root: root, status: status, seen: now())
        if record.fileType == .symlink, let target = try? sys_readlink(path.bytes) {
            record.linkTarget = PathBytes(target)
        }
        remember(path, status)
        metrics.add(.filesRecorded)
        emit(.record(record, nil))
    }

    private func remember(_ path: PathBytes, _ status: FileStatus) {
        if recorded.count >= Self.recordedLimit { recorded.removeAll(keepingCapacity: true) }
        recorded[path] = status.contentVersion
    }

    private func fileRecord(path: PathBytes, root: PathBytes, status: FileStatus, seen: Timestamp) -> FileRecord {
        let unlinked = status.linkCount == 0
        return FileRecord(
            path: path, mountPoint: root, fileType: FileType(mode: status.mode), device: status.device,
            inode: status.inode, size: status.size, mode: status.mode, uid: status.uid, gid: status.gid,
            linkCount: status.linkCount,
            modified: Timestamp(seconds: status.modifiedSeconds, nanoseconds: status.modifiedNanoseconds),
            changed: Timestamp(seconds: status.changedSeconds, nanoseconds: status.changedNanoseconds),
            firstSeen: seen, lastSeen: seen, deletedAt: unlinked ? seen : nil, state: unlinked ? .deleted : .present,
            kind: .other, reasons: [], hashStatus: .notRegular, sha256: nil)
    }
}
