// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Logging
import ServiceLifecycle
import WardenCore
import WardenResponse
import WardenStore

/// Prunes per the retention settings a minute after start and then every hour, or every minute
/// while the state directory is over its budget (evidence copies are refused meanwhile).
struct RetentionService: Service {
    let database: EvidenceDatabase
    let budget: StateBudget
    let quarantineDirectory: String
    let sandboxDirectory: String
    let settings: RetentionSettings
    let logger: Logger
    let clock: @Sendable () -> Timestamp

    func run() async throws {
        var delay = Duration.seconds(60)
        while true {
            // Ends the wait early on a graceful shutdown, and then the service.
            let wait = delay
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
            if Task.isCancelled || Task.isShuttingDownGracefully { return }
            delay = budget.isOverBudget ? .seconds(60) : .seconds(3600)
            let (database, quarantine, sandbox, settings, clock) = (
                database, quarantineDirectory, sandboxDirectory, settings, clock
            )
            do {
                let report = try await DedicatedThread.result(name: "warden-prune") {
                    try Retention.prune(
                        database: database, quarantineDirectory: quarantine, sandboxDirectory: sandbox,
                        settings: settings,
                        now: clock(), dryRun: false)
                }
                budget.remeasure()
                logger.notice(
                    "pruned",
                    metadata: [
                        "prune.alerts": "\(report.alerts)", "prune.files": "\(report.files)",
                        "prune.evidence": "\(report.evidencePaths.count)", "prune.bytes": "\(report.evidenceBytes)",
                        "prune.sandbox_runs": "\(report.sandboxRuns)",
                    ])
            } catch {
                logger.error("prune failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
