// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Logging
import SystemPackage
import WardenCore
import WardenLinux
import WardenStore

/// A descriptor whose bytes (hashing to `sha256`) must be kept; whoever holds the job owns it.
struct EvidenceJob: Sendable {
    var descriptor: FileDescriptor
    var sha256: String
    /// The bytes hashed: the copy takes these.
    var size: Int64
    var path: PathBytes
}

/// Makes evidence copies off the capture path, in batches, and reports each one to the store.
///
/// The capture thread records a file as soon as it is hashed and hands its descriptor here; the
/// copy (and its fsyncs) never delays the record, and the held descriptor keeps the bytes
/// readable however soon the dropper unlinks the file.
///
/// - Important: `process` runs on one thread at a time (the vault is not thread-safe).
final class EvidenceKeeper {
    private let vault: EvidenceVault
    private let metrics: SensorMetrics
    private let logger: Logger
    private let emit: (StoreCommand) -> Void
    /// Whether the last copy was refused by the budget: the log says so once per change.
    private var overBudget = false
    static let batchLimit = 256

    init(vault: EvidenceVault, metrics: SensorMetrics, logger: Logger, emit: @escaping (StoreCommand) -> Void) {
        self.vault = vault
        self.metrics = metrics
        self.logger = logger
        self.emit = emit
    }

    /// Copies what `jobs` hold, reports each outcome, and closes their descriptors.
    func process(_ jobs: [EvidenceJob]) {
        guard !jobs.isEmpty else { return }
        let results = vault.store(
            jobs.map { EvidenceVault.Item(source: $0.descriptor, sha256: $0.sha256, size: $0.size) })
        var reported: Set<String> = []
        for job in jobs {
            sys_close(job.descriptor)
            guard reported.insert(job.sha256).inserted, let result = results[job.sha256] else { continue }
            switch result {
            case .success(let (path, isNew)):
                if isNew { metrics.add(.evidenceCopies) }
                emit(.evidenceStored(sha256: job.sha256, path: path.displayString))
                if overBudget {
                    overBudget = false
                    logger.notice("evidence copies resume: the state directory has room again")
                }
            case .failure(.overBudget(let reason)):
                metrics.add(.evidenceSkipped)
                emit(.evidenceSkipped(sha256: job.sha256, reason: reason))
                if !overBudget {
                    overBudget = true
                    logger.error(
                        "evidence copies stop: the state directory is over its budget; executables are still recorded, alerts still stored",
                        metadata: ["reason": "\(reason)"])
                }
            case .failure(let failure):
                metrics.add(.evidenceFailures)
                // Said in the store too: the file's record (and its outbox event) must not wait
                // for a copy that will not come.
                emit(.evidenceSkipped(sha256: job.sha256, reason: "the copy failed: \(failure)"))
                logger.error(
                    "evidence copy failed",
                    metadata: ["file.path": "\(job.path)", "file.sha256": "\(job.sha256)", "error": "\(failure)"])
            }
        }
    }
}
