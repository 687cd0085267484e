// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Glibc
import Logging
import Synchronization
import SystemPackage
import WardenCore
import WardenLinux
import WardenStore

/// Scans captures with the rule set in force, off every capture path, and records each verdict.
///
/// Jobs come from the capture thread (every executable recorded with a hash), the exec
/// monitor (fileless captures) and the sandbox (files a sample wrote); each holds a descriptor
/// of the bytes. The same bytes are scanned once per rule set. A full queue is said in the
/// store (`skipped`), never silently lost.
public final class YaraScanService: Sendable {
    public struct Job: Sendable {
        /// Owned by the job: closed once scanned.
        public var descriptor: FileDescriptor
        /// What the bytes hashed to when they were recorded: a scan of other bytes is `changed`.
        public var sha256: String
        public var path: PathBytes

        public init(descriptor: FileDescriptor, sha256: String, path: PathBytes) {
            self.descriptor = descriptor
            self.sha256 = sha256
            self.path = path
        }
    }

    public let rules: SharedYaraRules
    public let board: YaraVerdictBoard
    public let settings: YaraSettings
    private let queue: BlockingQueue<Job>
    private let logger: Logger
    private let clock: @Sendable () -> Timestamp
    private let record: @Sendable (YaraVerdict) -> Void
    /// Contents answered under a rule set, and contents queued: each is scanned once.
    private let scanned = Mutex<(answered: Set<String>, queued: Set<String>)>(([], []))
    private static let scannedLimit = 100_000

    public init(
        rules: SharedYaraRules, settings: YaraSettings, board: YaraVerdictBoard = YaraVerdictBoard(),
        queueCapacity: Int = 4096, logger: Logger, clock: @escaping @Sendable () -> Timestamp,
        record: @escaping @Sendable (YaraVerdict) -> Void
    ) {
        self.rules = rules
        self.settings = settings
        self.board = board
        self.queue = BlockingQueue(capacity: queueCapacity)
        self.logger = logger
        self.clock = clock
        self.record = record
    }

    /// Files waiting to be scanned.
    public var depth: Int { queue.count }

    /// Queues a scan of a duplicate of `descriptor` (the caller keeps its own); never blocks.
    public func submit(duplicating descriptor: FileDescriptor, sha256: String, path: PathBytes) {
        guard let set = rules.current else { return }
        let key = set.fingerprint + sha256
        // A content answered, or already on its way (the sensor and the exec monitor may both
        // hand over the same bytes), is not queued again.
        guard scanned.withLock({ $0.answered.contains(key) ? false : $0.queued.insert(key).inserted }) else { return }
        guard let duplicate = try? sys_duplicate(descriptor) else {
            _ = scanned.withLock { $0.queued.remove(key) }
            skip(sha256, ruleset: set.fingerprint, "cannot duplicate the capture's descriptor")
            return
        }
        board.expect(sha256)
        guard queue.offer(Job(descriptor: duplicate, sha256: sha256, path: path)) else {
            sys_close(duplicate)
            _ = scanned.withLock { $0.queued.remove(key) }
            skip(sha256, ruleset: set.fingerprint, "the scan queue was full (\(queue.capacity) waiting)")
            board.publish(sha256, nil)
            return
        }
    }

    /// Queues a scan of the file at `path` (a sandbox's kept copy, owned by the agent).
    public func submit(file path: String, sha256: String) {
        guard rules.current != nil,
            let fd = try? sys_open(Array(path.utf8), flags: O_RDONLY | O_CLOEXEC, followingSymlinks: false)
        else { return }
        submit(duplicating: fd, sha256: sha256, path: PathBytes(path))
        sys_close(fd)
    }

    private func skip(_ sha256: String, ruleset: String, _ why: String) {
        logger.warning("YARA scan skipped", metadata: ["file.sha256": "\(sha256)", "reason": "\(why)"])
        record(YaraVerdict(sha256: sha256, ruleset: ruleset, status: .skipped, time: clock(), detail: why))
    }

    /// Scans until `finish()`, on `yara.threads` threads below the capture threads' priority.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<settings.threads {
                group.addTask { [self] in
                    await DedicatedThread.run(name: "warden-yara-\(index)") { self.work() }
                }
            }
        }
    }

    /// Lets the threads finish what is queued and stop.
    public func finish() { queue.close() }

    private func work() {
        try? sys_setThreadNice(5)
        let scanner = YaraFileScanner(rules: rules, settings: settings)
        while true {
            let batch = queue.takeAll(limit: 16)
            if batch.isEmpty && queue.isClosedAndEmpty { return }
            for job in batch {
                if let answer = answeredElsewhere(job.sha256) {
                    // The exec guard scanned these bytes (and stored its verdict) meanwhile.
                    sys_close(job.descriptor)
                    finished(job.sha256, ruleset: answer.ruleset, answered: true)
                    board.publish(job.sha256, answer)
                    continue
                }
                board.begin(job.sha256)
                let verdict = scanner.scan(job.descriptor, expectedSHA256: job.sha256, now: clock)
                sys_close(job.descriptor)
                guard let verdict else {
                    finished(job.sha256, ruleset: "", answered: false)
                    board.publish(job.sha256, nil)
                    continue
                }
                var stored = verdict
                stored.sha256 = job.sha256
                finished(job.sha256, ruleset: verdict.ruleset, answered: verdict.isAnswer)
                record(stored)
                board.publish(job.sha256, stored)
                log(stored, path: job.path)
            }
        }
    }

    /// An answer under the rules in force that another scanner (the exec guard's) published
    /// for `sha256`, waiting for one it is reading now.
    private func answeredElsewhere(_ sha256: String) -> YaraVerdict? {
        guard let set = rules.current else { return nil }
        board.waitWhileScanning(
            sha256, until: sys_monotonicNanoseconds() + Int64(settings.timeoutSeconds + 1) * 1_000_000_000)
        guard let published = board.latest(sha256), published.ruleset == set.fingerprint, published.isAnswer
        else { return nil }
        return published
    }

    private func finished(_ sha256: String, ruleset: String, answered: Bool) {
        scanned.withLock { scanned in
            for key in Set([ruleset + sha256, (rules.current?.fingerprint ?? ruleset) + sha256]) {
                scanned.queued.remove(key)
            }
            guard answered else { return }
            if scanned.answered.count >= Self.scannedLimit { scanned.answered.removeAll(keepingCapacity: true) }
            scanned.answered.insert(ruleset + sha256)
        }
    }

    private func log(_ verdict: YaraVerdict, path: PathBytes) {
        let metadata: Logger.Metadata = [
            "file.path": "\(path)", "file.sha256": "\(verdict.sha256)", "yara.status": "\(verdict.status.rawValue)",
            "yara.rules": "\(verdict.matches.map(\.rule).joined(separator: ","))",
        ]
        if !verdict.matches.isEmpty {
            logger.warning("YARA rules matched a capture", metadata: metadata)
        } else if verdict.isAnswer {
            logger.debug("YARA: no rule matched", metadata: metadata)
        } else {
            logger.warning(
                "YARA scan gave no answer", metadata: metadata.merging(["reason": "\(verdict.detail ?? "")"]) { $1 })
        }
    }
}
