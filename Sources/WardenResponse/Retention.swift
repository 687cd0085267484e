// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import WardenCore
import WardenLinux
import WardenStore

/// Prunes the store and the evidence directory per the retention settings; never a quarantined
/// sample (its hash is protected), nor anything a stored alert references.
public enum Retention {
    /// - Parameter sandboxDirectory: where sandbox runs keep what their samples wrote
    ///   (`<id>/written/<sha256>`): a removed run's directory goes with it.
    public static func prune(
        database: EvidenceDatabase, quarantineDirectory: String, sandboxDirectory: String, settings: RetentionSettings,
        now: Timestamp, dryRun: Bool
    ) throws -> PruneReport {
        let quarantined = ((try? QuarantineVault.entries(in: quarantineDirectory)) ?? [])
            .filter { $0.state != .restored }.map(\.sha256)
        let cutoff = settings.maxAgeSeconds.map {
            now.adding(nanoseconds: -Timestamp(seconds: $0, nanoseconds: 0).nanosecondsSinceEpoch)
        }
        if dryRun {
            return try database.prunePreview(
                olderThan: cutoff, evidenceBudget: settings.evidenceBudgetBytes, protected: Set(quarantined))
        }
        let report = try database.prune(
            olderThan: cutoff, evidenceBudget: settings.evidenceBudgetBytes, protected: Set(quarantined), dryRun: false)
        // The rows are gone first: a crash here leaves at worst an unreferenced file, never a row
        // pointing at a missing copy.
        for path in report.evidencePaths { try? sys_unlink(Array(path.utf8)) }
        // Run ids are ours ("sb" and base-36 digits); anything else is not a directory name to
        // join to a path and remove.
        for id in report.sandboxRunIDs where !id.isEmpty && id.utf8.allSatisfy({ isASCIIAlphanumeric($0) }) {
            try? FileManager.default.removeItem(atPath: sandboxDirectory + "/" + id)
        }
        return report
    }

    private static func isASCIIAlphanumeric(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
    }
}
