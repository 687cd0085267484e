// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Logging
import WardenCore
import WardenLinux
import WardenStore
import WardenYara

/// What one `scan` pass found.
public struct ScanSummary: Encodable, Sendable {
    /// The roots walked (tmpfs mount points and `--watch` paths).
    public var roots: [String]
    /// Entries examined (regular files and special files; directories not counted).
    public var entriesExamined: Int
    /// Executables and special files recorded in this pass.
    public var files: [FileRecord]
}

/// One pass over what is on the watched roots now, through the same capture pipeline as `run`.
public enum Scanner {
    static let chunkSize = 5000

    /// - Parameter yara: scans each executable recorded, as `run` does (nil: no rules).
    public static func scan(
        configuration: SensorConfiguration, database: EvidenceDatabase, logger: Logger,
        metrics: SensorMetrics = SensorMetrics(), yara: YaraFileScanner? = nil,
        progress: ((_ done: Int, _ total: Int) -> Void)? = nil
    ) throws -> ScanSummary {
        let mounts = try MountTable.read()
        let roots = WatchRoots.wanted(configuration: configuration, mounts: mounts, logger: logger)
        var commands: [StoreCommand] = []
        var recorded: [FileRecord] = []
        var evidencePaths: [String: String] = [:]
        var verdicts: [String: YaraVerdict] = [:]
        let emit: (StoreCommand) -> Void = { command in
            switch command {
            case .record(let file, _): recorded.append(file)
            case .evidenceStored(let sha256, let path): evidencePaths[sha256] = path
            case .yaraVerdict(let verdict): verdicts[verdict.sha256] = verdict
            default: break
            }
            commands.append(command)
        }
        let keeper = EvidenceKeeper(
            vault: try EvidenceVault(root: configuration.evidenceDirectory, budget: configuration.stateBudget),
            metrics: metrics, logger: logger,
            emit: emit)
        // Evidence is copied in batches, which also bounds the descriptors held open at once.
        var evidence: [EvidenceJob] = []
        let processor = CaptureProcessor(
            configuration: configuration, metrics: metrics, logger: logger, now: SensorService.wallClock,
            emit: emit,
            keepEvidence: { job in
                evidence.append(job)
                if evidence.count >= EvidenceKeeper.batchLimit {
                    keeper.process(evidence)
                    evidence.removeAll()
                }
            },
            scan: yara.map { scanner in
                { fd, sha256, _ in
                    guard verdicts[sha256] == nil,
                        var verdict = scanner.scan(fd, expectedSHA256: sha256, now: SensorService.wallClock)
                    else { return }
                    verdict.sha256 = sha256
                    emit(.yaraVerdict(verdict))
                }
            })
        var examined = 0
        let walked = roots.sorted(by: { $0.key < $1.key }).map { root, facts in
            (root, DirectoryWalker.walk(root, device: facts.device, excluded: configuration.excludedPaths))
        }
        let total = walked.reduce(0) { $0 + $1.1.count }
        for (root, files) in walked {
            // In chunks, committed as they go, so a large tmpfs shows progress and bounded memory.
            var start = 0
            repeat {
                let chunk = Array(files[start..<min(files.count, start + Self.chunkSize)])
                processor.process(.rescan(root: root, files: chunk, reconcile: false))
                keeper.process(evidence)
                evidence.removeAll()
                try database.apply(commands)
                commands.removeAll()
                start += chunk.count
                examined += chunk.count
                progress?(examined, total)
            } while start < files.count
            // Anything recorded below this root that the walk did not find is gone.
            try database.apply([.reconcile(root: root, present: Set(files), at: SensorService.wallClock())])
        }
        for index in recorded.indices {
            recorded[index].evidencePath = recorded[index].sha256.flatMap { evidencePaths[$0] }
            recorded[index].yara = recorded[index].sha256.flatMap { verdicts[$0] }
        }
        return ScanSummary(roots: roots.keys.sorted().map(\.displayString), entriesExamined: examined, files: recorded)
    }
}
