// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import SystemPackage
import WardenCore
import WardenLinux
import WardenYara

/// Hashes the exec guard's files on threads of their own, so the guard thread answers every
/// held exec by its deadline whatever one file costs to read.
///
/// Jobs wait in a queue served by uid in turn (`RoundRobinQueue`): a user who floods the guard
/// with execs of new files waits behind their own jobs, not in front of anyone else's, and past
/// their share the guard answers their execs at once, per `guard.failure`. Each result is
/// handed back through `done()`, and the guard thread is woken by `wake`'s descriptor.
///
/// - Important: `@unchecked Sendable` is sound because `queue`, `finished` and `closed` are only
///   touched with `condition` locked; the workers own their buffers.
final class GuardHasher: @unchecked Sendable {
    struct Job {
        var key: ContentVersion
        /// A duplicate of the event's descriptor: the guard may answer and close its own first.
        var descriptor: FileDescriptor
        var uid: UInt32
        /// The file's size when the exec began: small files (nearly every real executable) are
        /// hashed at the guard's own priority, large ones below it, so a stream of huge files
        /// takes the CPU from nobody's exec.
        var size: Int64
        var limit: ReadLimit
        /// Scan the bytes with the YARA rules too, once hashed (`guard.yara`).
        var scan = false
        /// Their hash, when the guard made it already: the scan is checked against it.
        var sha256: String?
    }

    /// Files up to this size are hashed at the guard thread's priority.
    static let smallFileBytes: Int64 = 4 << 20

    struct Done {
        var key: ContentVersion
        var result: Result<BoundedRead, SystemCallError>
        /// The YARA verdict on the hashed bytes, when the job asked for one and rules are loaded.
        var verdict: YaraVerdict?
    }

    let wake: StopSignal
    private let condition = NSCondition()
    private var queue: RoundRobinQueue<UInt32, Job>
    private var finished: [Done] = []
    private var closed = false
    private var running = 0

    /// - Parameters:
    ///   - workers: threads reading files; each reads one file at a time.
    ///   - perUser: jobs one uid may have waiting.
    /// The rules to scan with, and the board the scans are announced and published on: the
    /// capture pipeline then spares a second scan of the same bytes, and a responder waiting
    /// for them gets the verdict.
    private let yara: (rules: SharedYaraRules, settings: YaraSettings, board: YaraVerdictBoard?)?
    private let clock: @Sendable () -> Timestamp

    init(
        workers: Int = 2, perUser: Int = 32, total: Int = 1024,
        yara: (rules: SharedYaraRules, settings: YaraSettings, board: YaraVerdictBoard?)? = nil,
        clock: @escaping @Sendable () -> Timestamp = { Timestamp(nanosecondsSinceEpoch: 0) }
    ) throws(SystemCallError) {
        self.yara = yara
        self.clock = clock
        wake = try StopSignal()
        queue = RoundRobinQueue(perOwnerLimit: perUser, totalLimit: total)
        running = workers
        for index in 0..<workers {
            DedicatedThread.detach(name: "warden-ghash-\(index)") { [self] in work() }
        }
    }

    /// Queues `job`; false (and the job's descriptor closed) when its uid's share is full.
    func submit(_ job: Job) -> Bool {
        condition.lock()
        let queued = !closed && queue.append(job, owner: job.uid)
        if queued { condition.signal() }
        condition.unlock()
        if !queued { sys_close(job.descriptor) }
        return queued
    }

    /// The results since the last call.
    func done() -> [Done] {
        wake.drain()
        condition.lock()
        defer { condition.unlock() }
        defer { finished.removeAll(keepingCapacity: true) }
        return finished
    }

    /// Stops the workers once they finish the file in hand; queued jobs are dropped.
    func close() {
        condition.lock()
        closed = true
        let dropped = queue.removeAll()
        condition.broadcast()
        condition.unlock()
        for job in dropped { sys_close(job.descriptor) }
    }

    private func work() {
        let digest = DescriptorDigest()
        let scanner = yara.map { YaraFileScanner(rules: $0.rules, settings: $0.settings) }
        var nice: Int32 = 0
        while true {
            condition.lock()
            while queue.isEmpty && !closed { condition.wait() }
            guard !closed, let job = queue.next() else {
                running -= 1
                condition.unlock()
                return
            }
            condition.unlock()
            let wanted: Int32 = job.size <= Self.smallFileBytes ? -10 : 10
            if wanted != nice, (try? sys_setThreadNice(wanted)) != nil { nice = wanted }
            var verdict: YaraVerdict?
            var result: Result<BoundedRead, SystemCallError>?
            var announced: String?
            if job.scan, let scanner, let yara {
                // One read for both: the scanner hashes the bytes it scans (against the hash the
                // guard made, when it made one), so the verdict is about exactly the bytes that
                // hash names; bytes the capture pipeline scanned already take its verdict. A file
                // past yara.max-file-size, or one not read whole, is hashed on its own below.
                let scanned = scanner.scan(
                    job.descriptor, expectedSHA256: job.sha256, deadline: job.limit.deadline, now: clock
                ) { sha256 in
                    guard let board = yara.board else { return nil }
                    if board.isScanning(sha256) {
                        board.waitWhileScanning(sha256, until: job.limit.deadline ?? sys_monotonicNanoseconds())
                    }
                    if let published = board.latest(sha256), published.isAnswer,
                        published.ruleset == yara.rules.current?.fingerprint
                    {
                        return published
                    }
                    board.begin(sha256)
                    announced = sha256
                    return nil
                }
                if let scanned, scanned.sha256.count == 64, scanned.size <= job.limit.maxBytes,
                    scanned.status != .truncated, scanned.status != .changed,
                    job.sha256 != nil || scanned.status != .failed
                {
                    result = .success(.complete(sha256: scanned.sha256, bytes: scanned.size))
                }
                verdict = scanned?.status == .changed ? nil : scanned
            }
            let hashed =
                result
                ?? Result { () throws(SystemCallError) in try digest.sha256(of: job.descriptor, limit: job.limit) }
            // A scan of a prefix names the whole file's hash, when the file was hashed whole (it
            // was checked against the file by size and times).
            if verdict?.status == .truncated {
                if case .success(.complete(let sha256, _)) = hashed { verdict?.sha256 = sha256 } else { verdict = nil }
            }
            if let announced, let board = yara?.board {
                board.publish(announced, verdict?.sha256 == announced ? verdict : nil, expected: false)
            }
            sys_close(job.descriptor)
            condition.lock()
            finished.append(Done(key: job.key, result: hashed, verdict: verdict))
            condition.unlock()
            wake.fire()
        }
    }
}
