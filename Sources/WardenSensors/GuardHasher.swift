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
    private let yara: (rules: SharedYaraRules, settings: YaraSettings)?
    private let clock: @Sendable () -> Timestamp

    init(
        workers: Int = 2, perUser: Int = 32, total: Int = 1024,
        yara: (rules: SharedYaraRules, settings: YaraSettings)? = nil,
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
            let result = Result { () throws(SystemCallError) in try digest.sha256(of: job.descriptor, limit: job.limit)
            }
            var verdict: YaraVerdict?
            if job.scan, let scanner, case .success(.complete(let sha256, _)) = result {
                // Read again for the scan, checked against the hash just made: the verdict is
                // about exactly the bytes that hash names.
                verdict = scanner.scan(job.descriptor, expectedSHA256: sha256, deadline: job.limit.deadline, now: clock)
            }
            sys_close(job.descriptor)
            condition.lock()
            finished.append(Done(key: job.key, result: result, verdict: verdict))
            condition.unlock()
            wake.fire()
        }
    }
}
