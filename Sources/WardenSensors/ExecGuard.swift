// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import Logging
import Synchronization
import SystemPackage
import WardenCore
import WardenLinux
import WardenStore
import WardenYara

/// The generation of the policy whose guard marks are in place: -1 until the guard thread has
/// applied its first. What a caller waits on to know that execs are guarded as the policy says.
public final class GuardReadiness: Sendable {
    public let appliedGeneration = Atomic<Int>(-1)

    public init() {}
}

/// The exec guard: a `FAN_CLASS_CONTENT` fanotify group with `FAN_OPEN_EXEC_PERM` marks on the
/// watched tmpfs filesystems, answered by one dedicated thread.
///
/// Every exec there waits in the kernel until this thread answers, so the thread never waits
/// without a deadline: the hash is read from the descriptor the kernel handed over (never by
/// path), capped in bytes read, and cached by (device, inode, size, mtime, ctime). A small file
/// is hashed here; a larger one on `GuardHasher`'s threads while the exec waits, and an exec
/// whose hash is not done by `guard.deadline` is answered per `guard.failure` (its hash goes on,
/// for the next exec). With `guard.yara`, a file is hashed and then scanned with the YARA rules
/// on those threads, under the same deadline; the verdict is cached by hash, for the next exec.
/// SQLite and the capture pipeline are told afterwards through non-blocking queues. Any internal
/// error is answered per `guard.failure` (loudly). Closing the group (a stop, or the process
/// dying) makes the kernel let every pending exec through.
///
/// A file allowed by its hash gets an inode ignore mark for `FAN_OPEN_EXEC_PERM`, which the
/// kernel clears at the file's next modification: later execs of the unchanged file are not
/// held at all (the permission round trip was most of the guard's exec overhead). They are
/// still recorded, from the `FAN_OPEN_EXEC` notification the same marks ask for. A policy
/// change replaces the whole group, so no ignore mark outlives the decision behind it.
///
/// - Important: Everything but `requestStop()` runs on the guard thread.
final class ExecGuard {
    private let configuration: SensorConfiguration
    private let policy: SharedPolicy
    private let metrics: SensorMetrics
    private let logger: Logger
    /// Hands an exec record to the store without waiting; false when its queue is full.
    private let record: (StoreCommand) -> Bool
    /// Hands a denied file's descriptor to the capture thread; false when it cannot take it.
    private let capture: (CaptureJob) -> Bool
    private let now: () -> Timestamp
    private let stop: StopSignal
    private let mountInfo: FileDescriptor
    private let digest = DescriptorDigest()
    private let ownPID = sys_getpid()

    private var fanotify: Fanotify?
    /// The events the roots are marked for: permission to exec, and the exec notification that
    /// records execs the kernel no longer holds (ignore-marked files).
    private static let markMask = FanotifyMask.openExecPermission.union(.openExec)
    /// Ignore marks added to the current group; none beyond `cacheLimit` (later execs are held).
    private var ignoreMarks = 0
    /// Allowed execs whose record was made at their permission event: their notification is
    /// skipped. A key whose notification never comes is dropped with the rest at the limit.
    private var recordedAtPermission: Set<ExecKey> = []
    /// While a replaced group is drained: an exec queued in both groups is answered by each
    /// (first the old, then the new one), and recorded once. Forgotten a second after the swap.
    private var drainingOldGroup = false
    private var answeredByOldGroup: Set<ExecKey> = []
    private var oldGroupDrainedAt: Int64 = 0
    /// Execs this group answered in the last second. An exec the old group answered just before
    /// the swap can still be on its way through the kernel's marks and reach the new group too
    /// (seen after a reload: one exec, two records); these count as answered by the old group.
    private var recentAnswers: [(key: ExecKey, at: Int64)] = []
    private static let recentAnswerWindow: Int64 = 1_000_000_000
    /// Marked roots: whether each is a whole filesystem (`FAN_MARK_FILESYSTEM`, for mount points)
    /// or a directory's children.
    private var marked: [PathBytes: Bool] = [:]
    private var generation = -1
    /// Which policy's marks are in place, for readers on other threads.
    private let readiness: GuardReadiness
    private var mode = GuardPolicy.Mode.off
    /// SHA-256, or why there is none, by (device, inode, size, mtime, ctime); cleared on a policy change.
    private var hashes: [ContentVersion: GuardHash] = [:]
    /// Reads and hashes files off this thread; nil until the first group starts.
    private var hasher: GuardHasher?
    /// Content versions the hasher has in hand or queued.
    private var hashing: Set<ContentVersion> = []
    /// Held execs waiting for their file's hash, each with its deadline.
    private var waiting: [HeldExec] = []
    private static let cacheLimit = 65_536
    /// Exec records not yet handed to the store: a burst of execs becomes one transaction.
    private var pendingRecords: [ExecRecord] = []
    private static let recordBatch = 256
    /// Content versions already handed to the capture thread.
    private var handedToCapture: Set<ContentVersion> = []
    /// The YARA rules `guard.yara` is decided by (nil: none configured, so `guard.yara` has no
    /// answer and its execs get `guard.failure`).
    private let yara: (rules: SharedYaraRules, settings: YaraSettings, board: YaraVerdictBoard?)?
    /// YARA verdicts by SHA-256, each under the rule set named in it.
    private var verdicts: [String: YaraVerdict] = [:]

    init(
        configuration: SensorConfiguration, policy: SharedPolicy, metrics: SensorMetrics, logger: Logger,
        readiness: GuardReadiness, now: @escaping () -> Timestamp, record: @escaping (StoreCommand) -> Bool,
        capture: @escaping (CaptureJob) -> Bool,
        yara: (rules: SharedYaraRules, settings: YaraSettings, board: YaraVerdictBoard?)? = nil
    ) throws {
        self.yara = yara
        self.readiness = readiness
        self.configuration = configuration
        self.policy = policy
        self.metrics = metrics
        self.logger = logger
        self.now = now
        self.record = record
        self.capture = capture
        self.stop = try StopSignal()
        self.mountInfo = try sys_open(MountTable.path, flags: O_RDONLY, followingSymlinks: true)
    }

    deinit {
        sys_close(mountInfo)
    }

    /// Asks the guard thread to stop; safe from any thread.
    func requestStop() {
        stop.fire()
    }

    func run() {
        // Every exec on a guarded mount waits for this thread: let it run before ordinary work.
        try? sys_setThreadNice(-10)
        do {
            hasher = try GuardHasher(perUser: Self.perUserHashes, yara: yara, clock: SensorService.wallClock)
        } catch {
            logger.critical("exec guard: cannot start its hashing threads", metadata: ["error": "\(error)"])
        }
        defer { hasher?.close() }
        applyPolicyIfChanged()
        var fds = [
            pollfd(fd: -1, events: Int16(POLLIN), revents: 0),
            pollfd(fd: stop.descriptor.rawValue, events: Int16(POLLIN), revents: 0),
            pollfd(fd: mountInfo.rawValue, events: Int16(POLLPRI), revents: 0),
            pollfd(fd: hasher?.wake.descriptor.rawValue ?? -1, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            fds[0].fd = fanotify?.descriptor.rawValue ?? -1
            for index in fds.indices { fds[index].revents = 0 }
            do {
                // The timeout is how soon a reloaded policy (guard on/off) takes effect, how
                // long exec records wait to be batched, and no later than the next held exec's
                // deadline.
                let base: Int32 = pendingRecords.isEmpty ? 250 : 20
                let due = millisecondsToNextDeadline(now: sys_monotonicNanoseconds()) ?? base
                _ = try sys_poll(&fds, timeout: min(base, due))
            } catch {
                logger.error("exec guard: poll failed", metadata: ["error": "\(error)"])
                break
            }
            if fds[3].revents != 0 { takeHashes() }
            answerOverdue(now: sys_monotonicNanoseconds())
            if fds[0].revents != 0, let fanotify { answerQueued(on: fanotify) } else { flushRecords() }
            if !answeredByOldGroup.isEmpty && sys_monotonicNanoseconds() - oldGroupDrainedAt > 1_000_000_000 {
                answeredByOldGroup.removeAll()
            }
            if fds[1].revents != 0 { break }
            if fds[2].revents & Int16(POLLPRI | POLLERR) != 0 { refreshMarks() }
            applyPolicyIfChanged()
        }
        // Answer what is still queued, then close the group: the kernel lets later execs through.
        if let fanotify { answerQueued(on: fanotify) }
        for held in waiting {
            conclude(held, hash: .failed("the guard stopped before the file was hashed"), cached: false)
        }
        waiting.removeAll()
        fanotify = nil
        marked.removeAll()
        flushRecords()
    }

    private func flushRecords() {
        for exec in pendingRecords where !record(.exec(exec)) { metrics.add(.execRecordsDropped) }
        pendingRecords.removeAll(keepingCapacity: true)
    }

    // MARK: - Policy and marks

    private func applyPolicyIfChanged() {
        let current = policy.generation
        guard current != generation else { return }
        generation = current
        // Said once the marks of this generation are in place (or the guard is off).
        defer { readiness.appliedGeneration.store(current, ordering: .releasing) }
        hashes.removeAll(keepingCapacity: true)
        let newMode = policy.current.execGuard.mode
        if newMode == mode {
            // Same mode, new policy: ignore marks may stand for allowlist entries that are gone.
            if mode != .off && ignoreMarks > 0 { replaceGroup() }
            return
        }
        mode = newMode
        if mode == .off {
            fanotify = nil
            marked.removeAll()
            ignoreMarks = 0
            logger.notice("exec guard off")
            return
        }
        replaceGroup()
        logger.notice("exec guard \(mode.rawValue)", metadata: ["guard.roots": "\(marked.keys.sorted())"])
    }

    /// Starts a new group with every root marked and none of the old ignore marks, then
    /// answers what the old group still holds (under the current policy) and closes it. An
    /// exec arriving in between waits on both groups; the old one lets it through when closed,
    /// the new one decides it.
    private func replaceGroup() {
        let old = fanotify
        do {
            fanotify = try Fanotify(permissionEvents: true)
        } catch {
            if old == nil {
                logger.critical(
                    "exec guard cannot start: fanotify permission events are unavailable (needs CAP_SYS_ADMIN and a kernel with FAN_OPEN_EXEC_PERM); execs are NOT being guarded",
                    metadata: ["error": "\(error)"])
            } else {
                logger.critical(
                    "exec guard cannot renew its fanotify group: files allowed under the previous policy stay allowed until they change",
                    metadata: ["error": "\(error)"])
            }
            metrics.add(.guardFailures)
            return
        }
        marked.removeAll()
        ignoreMarks = 0
        // `recordedAtPermission` stays: the old group may still hold the notifications of execs
        // recorded at their permission event (clearing it here recorded those execs twice when
        // a reload came between an allowed exec and its notification).
        refreshMarks()
        if let old {
            let now = sys_monotonicNanoseconds()
            answeredByOldGroup = Set(recentAnswers.filter { now - $0.at < Self.recentAnswerWindow }.map(\.key))
            recentAnswers.removeAll(keepingCapacity: true)
            drainingOldGroup = true
            answerQueued(on: old)
            drainingOldGroup = false
            oldGroupDrainedAt = sys_monotonicNanoseconds()
        }
    }

    /// Marks every watched root (whole mounts where the root is a mount point, else the
    /// directory's children) and unmarks roots that went away.
    private func refreshMarks() {
        let entries: [MountInfoEntry]
        do {
            entries = try MountInfoParser.parse(try MountTable.readAll(mountInfo))
        } catch {
            logger.error("exec guard: cannot read /proc/self/mountinfo", metadata: ["error": "\(error)"])
            return
        }
        guard let fanotify, mode != .off else { return }
        let wanted = WatchRoots.wanted(configuration: configuration, mounts: entries, logger: nil)
        let mountPoints = Set(MountInfoParser.visible(entries).map { PathBytes($0.mountPoint) })
        for (path, isMount) in marked where wanted[path] == nil {
            try? fanotify.unmark(path.bytes, filesystem: isMount, mask: Self.markMask)
            marked.removeValue(forKey: path)
        }
        for path in wanted.keys.sorted() where marked[path] == nil {
            let isMount = mountPoints.contains(path)
            do {
                if isMount {
                    try fanotify.markFilesystem(path.bytes, mask: Self.markMask)
                } else {
                    try fanotify.markDirectory(path.bytes, mask: Self.markMask)
                }
                marked[path] = isMount
            } catch {
                logger.error(
                    "exec guard: cannot mark; execs there are not guarded",
                    metadata: ["mount.point": "\(path)", "error": "\(error)"])
                metrics.add(.guardFailures)
            }
        }
    }

    // MARK: - Answers

    private func answerQueued(on fanotify: Fanotify) {
        while true {
            let events: [FanotifyEvent]
            do {
                events = try fanotify.readEvents()
            } catch {
                logger.error("exec guard: read failed", metadata: ["error": "\(error)"])
                return
            }
            if events.isEmpty { return }
            for event in events { answer(event, on: fanotify) }
        }
    }

    private func answer(_ event: FanotifyEvent, on fanotify: Fanotify) {
        guard let fd = event.descriptor else { return }
        if event.mask.contains(.openExecPermission) {
            answerPermission(event, fd: fd, on: fanotify)
        } else if event.mask.contains(.openExec) {
            recordNotification(event, fd: fd)
        } else {
            sys_close(fd)
        }
    }

    private func answerPermission(_ event: FanotifyEvent, fd: FileDescriptor, on fanotify: Fanotify) {
        let started = sys_monotonicNanoseconds()
        if event.pid == ownPID {
            // Never stand in our own way (the sandbox runs samples from our own copies).
            try? fanotify.respond(to: fd, allow: true)
            sys_close(fd)
            return
        }
        let held = HeldExec(event: event, fd: fd, fanotify: fanotify, status: try? sys_fstat(fd), started: started)
        guard let status = held.status else {
            conclude(held, hash: .failed("cannot fstat the executable's descriptor"), cached: false)
            return
        }
        let key = status.contentVersion
        let execGuard = policy.current.execGuard
        if let known = hashes[key] {
            metrics.add(.guardCacheHits)
            guard case .sha256(let sha) = known, needsScan(sha) else {
                conclude(held, hash: known, cached: true)
                return
            }
            // Hashed before, not scanned under the rules in force: scanned now, within the deadline.
            park(held, key: key, status: status, scan: true, sha256: sha)
            return
        }
        if status.size > execGuard.hashSizeCap {
            remember(key, .failed("larger than guard.hash-size-cap (\(status.size) bytes)"))
            conclude(held, hash: hashes[key], cached: false)
            return
        }
        // A small file (nearly every real executable) is hashed here and now: a megabyte at most,
        // read within 5 ms, costs less than a hand-over to another thread. One that is larger, or
        // grows past that while read, goes to the pool.
        // With guard.yara, the pool reads the file once for its hash and its verdict: the
        // capture pipeline's verdict when it scanned these bytes already, else its own scan.
        let scan = execGuard.yara != nil && yara != nil
        if !scan, status.size <= Self.inlineHashBytes, !hashing.contains(key),
            case .complete(let sha256, _)? = try? digest.sha256(
                of: fd, limit: ReadLimit(maxBytes: Self.inlineHashBytes, deadline: started &+ 5_000_000)),
            (try? sys_fstat(fd))?.contentVersion == key
        {
            remember(key, .sha256(sha256))
            conclude(held, hash: .sha256(sha256), cached: false)
            return
        }
        park(held, key: key, status: status, scan: scan)
    }

    /// Whether `sha256` must be scanned before the guard may decide: `guard.yara` is set, the
    /// hash is not allowlisted, and no answer under the rules in force is known, here or from
    /// the capture pipeline's scans.
    private func needsScan(_ sha256: String) -> Bool {
        let current = policy.current
        guard current.execGuard.yara != nil, let yara, let set = yara.rules.current,
            !current.allowlist.sha256.contains(sha256)
        else { return false }
        if let known = verdicts[sha256], known.ruleset == set.fingerprint { return false }
        if let published = yara.board?.latest(sha256), published.ruleset == set.fingerprint, published.isAnswer {
            remember(verdict: published)
            return false
        }
        return true
    }

    private func remember(verdict: YaraVerdict) {
        if verdicts.count >= Self.cacheLimit { verdicts.removeAll(keepingCapacity: true) }
        verdicts[verdict.sha256] = verdict
    }

    /// Hashes (and scans, with `scan`) off this thread: the exec waits for the result or the
    /// deadline, whichever is first, and every other exec is decided meanwhile. `sha256`: the
    /// hash this thread made already (the scan is checked against it).
    private func park(
        _ held: HeldExec, key: ContentVersion, status: FileStatus, scan: Bool, sha256: String? = nil
    ) {
        let execGuard = policy.current.execGuard
        let event = held.event
        let started = held.started
        if !hashing.contains(key) {
            let uid = sys_processUID(of: event.pid) ?? UInt32.max
            guard let hasher else {
                conclude(held, hash: .failed("the guard's hashing threads did not start"), cached: false)
                return
            }
            guard let duplicate = try? sys_duplicate(held.fd),
                hasher.submit(
                    GuardHasher.Job(
                        key: key, descriptor: duplicate, uid: uid, size: status.size,
                        limit: .bytes(execGuard.hashSizeCap, seconds: Self.hashTimeBudgetSeconds), scan: scan,
                        sha256: sha256)) == true
            else {
                metrics.add(.guardDeadlines)
                conclude(
                    held, hash: .failed("uid \(uid) has \(Self.perUserHashes) files waiting to be hashed already"),
                    cached: false)
                return
            }
            hashing.insert(key)
        }
        var parked = held
        parked.deadline = started &+ Int64(execGuard.deadlineMilliseconds) * 1_000_000
        waiting.append(parked)
    }

    /// How long a file's hash may take on the pool (its result is cached for later execs even
    /// when the exec that asked for it was answered at its deadline).
    static let hashTimeBudgetSeconds = 10.0
    /// Files up to this size are hashed on the answering thread itself.
    static let inlineHashBytes: Int64 = 1 << 20
    static let perUserHashes = 32

    /// An exec the kernel holds until this thread answers.
    struct HeldExec {
        var event: FanotifyEvent
        var fd: FileDescriptor
        /// The group the event came from: the answer goes there, even after a policy swap.
        var fanotify: Fanotify
        var status: FileStatus?
        var started: Int64
        /// When the answer is due, for an exec waiting for its file's hash.
        var deadline: Int64 = .max
    }

    /// Takes the pool's results: caches each, and answers the execs waiting for it.
    private func takeHashes() {
        guard let hasher else { return }
        for done in hasher.done() {
            hashing.remove(done.key)
            let hash: GuardHash
            switch done.result {
            case .success(.complete(let sha256, _)): hash = .sha256(sha256)
            case .success(.tooLarge(let read)):
                hash = .failed("grew past guard.hash-size-cap while read (\(read) bytes read)")
            case .success(.outOfTime(let read)):
                hash = .failed("not hashed within \(Int(Self.hashTimeBudgetSeconds)) s (\(read) bytes read)")
            case .failure(let error): hash = .failed("cannot hash: \(error)")
            }
            remember(done.key, hash)
            if let verdict = done.verdict, verdict.sha256.count == 64 {
                remember(verdict: verdict)
                // The store hears of it too: `files` shows it, and the capture's scan is spared.
                if !record(.yaraVerdict(verdict)) { metrics.add(.execRecordsDropped) }
            }
            let ready = waiting.filter { $0.status?.contentVersion == done.key }
            waiting.removeAll { $0.status?.contentVersion == done.key }
            for held in ready { conclude(held, hash: hash, cached: false) }
        }
    }

    /// Answers, per `guard.failure`, every waiting exec whose deadline has passed.
    private func answerOverdue(now: Int64) {
        guard waiting.contains(where: { $0.deadline <= now }) else { return }
        let overdue = waiting.filter { $0.deadline <= now }
        waiting.removeAll { $0.deadline <= now }
        for held in overdue {
            metrics.add(.guardDeadlines)
            let deadline = policy.current.execGuard.deadlineMilliseconds
            let reason =
                yara != nil && policy.current.execGuard.yara != nil
                ? "deadline: not hashed and scanned within guard.deadline (\(deadline) ms); the scan goes on for later execs"
                : "deadline: not hashed within guard.deadline (\(deadline) ms); the hash goes on for later execs"
            conclude(held, hash: .failed(reason), cached: false)
        }
    }

    /// Milliseconds until the next waiting exec is due (nil when none waits).
    private func millisecondsToNextDeadline(now: Int64) -> Int32? {
        guard let next = waiting.map(\.deadline).min() else { return nil }
        return Int32(clamping: max(0, (next - now + 999_999) / 1_000_000))
    }

    /// Decides a held exec from its file's hash (or why there is none), answers the kernel, and
    /// records it.
    private func conclude(_ held: HeldExec, hash: GuardHash?, cached: Bool) {
        let current = policy.current
        let fd = held.fd
        let event = held.event
        let status = held.status
        var sha: String?
        var failure: String?
        switch hash {
        case .sha256(let digest)?: sha = digest
        case .failed(let reason)?: failure = reason
        case nil: failure = "not hashed"
        }
        var verdict: YaraVerdict?
        if let sha, current.execGuard.yara != nil, !current.allowlist.sha256.contains(sha) {
            let missing = needsScan(sha)  // (takes a verdict the capture pipeline published)
            verdict = verdicts[sha]
            if yara?.rules.current == nil {
                failure = "guard.yara is set but no YARA rules are loaded (yara.rules)"
            } else if missing {
                failure = "no YARA verdict on it under the rules in force"
            } else if let verdict, !verdict.isAnswer {
                failure = "its YARA scan gave no answer (\(verdict.summary))"
            }
        }
        var path: PathBytes?
        // The path decides only through path globs: without any, it is read after the answer.
        if !current.allowlist.paths.isEmpty, let status {
            path = sys_descriptorTarget(fd, status: status).map(PathBytes.init)
        }
        // A path glob vouches only where the owners do: checked only when one matches.
        var pathDistrust: String?
        if let path, let status, current.allowlist.paths.contains(where: { $0.matches(path) }) {
            pathDistrust = OwnershipChain.distrust(
                path: path, status: status, trustedOwners: current.allowlist.trustedOwners)
        }
        let decision = GuardDecision.decide(
            path: path ?? PathBytes([]), sha256: sha, policy: current, failureReason: failure,
            pathDistrust: pathDistrust, yara: verdict)
        // Who is exec'ing: read while the exec waits, so the process surely still exists (one
        // pidfd ioctl, a few µs; an allowed process may exit right after the answer).
        let identity = sys_processIdentity(of: event.pid)
        // The decision is made: what follows (the write, and any preemption by the process it
        // wakes) is not decision time.
        let elapsed = sys_monotonicNanoseconds() - held.started
        do {
            try held.fanotify.respond(to: fd, allow: decision.verdict == .allow)
        } catch {
            logger.critical("exec guard: cannot answer the kernel", metadata: ["error": "\(error)"])
        }
        // Everything below happens after the answer: the exec is no longer waiting.
        // Every allowed exec is recorded here, one let through per guard.failure too: the
        // notification that follows it is skipped.
        if decision.verdict == .allow, let status {
            if recordedAtPermission.count >= Self.cacheLimit { recordedAtPermission.removeAll(keepingCapacity: true) }
            recordedAtPermission.insert(ExecKey(pid: event.pid, device: status.device, inode: status.inode))
            if failure == nil, Self.mayIgnore(decision), held.fanotify === fanotify {
                ignoreLaterExecs(of: fd, as: status, on: held.fanotify)
            }
        }
        if path == nil, let status { path = sys_descriptorTarget(fd, status: status).map(PathBytes.init) }
        let filePath = path ?? PathBytes([])
        metrics.add(decision.verdict == .allow ? .guardAllowed : .guardDenied)
        if failure != nil {
            metrics.add(.guardFailures)
            logger.error(
                "exec guard could not decide; answered \(decision.verdict.rawValue) per guard.failure",
                metadata: ["file.path": "\(filePath)", "pid": "\(event.pid)", "reason": "\(failure ?? "")"])
        }
        if let status {
            let key = ExecKey(pid: event.pid, device: status.device, inode: status.inode)
            if drainingOldGroup {
                answeredByOldGroup.insert(key)
            } else if !answeredByOldGroup.isEmpty, answeredByOldGroup.remove(key) != nil {
                sys_close(fd)  // recorded when the old group answered it
                return
            } else {
                // Pruned in one sweep once the oldest is two windows old: amortized constant
                // time per exec.
                let now = sys_monotonicNanoseconds()
                if let oldest = recentAnswers.first, now - oldest.at >= 2 * Self.recentAnswerWindow {
                    recentAnswers.removeAll { now - $0.at >= Self.recentAnswerWindow }
                }
                recentAnswers.append((key, now))
            }
        }
        let exec = ExecRecord(
            time: now(), pid: event.pid, ppid: identity.ppid, uid: identity.uid, path: filePath, sha256: sha,
            device: status?.device ?? 0, inode: status?.inode ?? 0, verdict: decision.verdict,
            wouldBe: decision.wouldBe,
            mode: current.execGuard.mode, rule: decision.rule, reason: decision.reason, cached: cached,
            decisionNanoseconds: elapsed)
        finish(exec, decision: decision, fd: fd, status: status)
    }

    /// Records an exec the kernel did not hold (the file carries an ignore mark from an earlier
    /// allow), restating the decision from the cache. Execs already recorded at their permission
    /// event, and our own, are skipped. Nothing is hashed here: a file no longer in the cache is
    /// recorded unhashed, and queued for hashing so the cache knows it again.
    private func recordNotification(_ event: FanotifyEvent, fd: FileDescriptor) {
        guard event.pid != ownPID, let status = try? sys_fstat(fd),
            recordedAtPermission.remove(ExecKey(pid: event.pid, device: status.device, inode: status.inode)) == nil
        else {
            sys_close(fd)
            return
        }
        let current = policy.current
        let key = status.contentVersion
        var sha: String?
        var failure: String?
        switch hashes[key] {
        case .sha256(let digest)?: sha = digest
        case .failed(let reason)?: failure = reason
        case nil:
            failure = "no longer in the guard's cache; not hashed on the exec's way"
            if !hashing.contains(key), status.size <= current.execGuard.hashSizeCap,
                let duplicate = try? sys_duplicate(fd),
                hasher?.submit(
                    GuardHasher.Job(
                        key: key, descriptor: duplicate, uid: sys_processUID(of: event.pid) ?? UInt32.max,
                        size: status.size,
                        limit: .bytes(current.execGuard.hashSizeCap, seconds: Self.hashTimeBudgetSeconds))) == true
            {
                hashing.insert(key)
            }
        }
        let identity = sys_processIdentity(of: event.pid)
        let path = sys_descriptorTarget(fd, status: status).map(PathBytes.init) ?? PathBytes([])
        let decision = GuardDecision.decide(path: path, sha256: sha, policy: current, failureReason: failure)
        metrics.add(.guardAllowed)
        let exec = ExecRecord(
            time: now(), pid: event.pid, ppid: identity.ppid, uid: identity.uid,
            path: path, sha256: sha, device: status.device, inode: status.inode,
            verdict: .allow,  // the kernel let it run: that is what happened, whatever the policy says now
            wouldBe: decision.wouldBe, mode: current.execGuard.mode, rule: decision.rule, reason: decision.reason,
            cached: true, held: false, decisionNanoseconds: 0)
        finish(exec, decision: decision, fd: fd, status: status)
    }

    /// Queues the record and hands the file to capture when it is evidence; closes `fd` unless
    /// the capture thread took it.
    private func finish(_ exec: ExecRecord, decision: GuardDecision, fd: FileDescriptor, status: FileStatus?) {
        pendingRecords.append(exec)
        if pendingRecords.count >= Self.recordBatch { flushRecords() }
        // A refused (or, in monitor mode, would-be refused) file is evidence: capture it, once per
        // content version (the sensor records it too when it saw it written; this covers the
        // rest). With the sensor's exec capture off, every executed version is handed over.
        let filePath = exec.path
        if decision.wouldBe == .deny || !configuration.captureOnExec, let status, !filePath.bytes.isEmpty,
            handedToCapture.insert(status.contentVersion).inserted,
            capture(
                .file(
                    filePath, root: root(for: filePath) ?? filePath, pinned: PinnedFile(descriptor: fd, status: status))
            )
        {
            if handedToCapture.count > Self.cacheLimit { handedToCapture.removeAll(keepingCapacity: true) }
            return  // the capture thread owns the descriptor now
        }
        sys_close(fd)
    }

    /// Whether an allowed file may skip the permission round trip until it changes: only when
    /// its hash is allowlisted. A path glob decides by name, and a hard link or a rename gives
    /// the same inode another. A file monitor mode lets through but enforce would refuse stays
    /// held: its uid is read while the exec waits, which a notification read later cannot
    /// promise for a process that exits at once.
    private static func mayIgnore(_ decision: GuardDecision) -> Bool {
        decision.wouldBe == .allow && decision.rule == "allowlist-sha256"
    }

    /// Adds the ignore mark, then checks that the file did not change between the hash and the
    /// mark (a write in that window cleared nothing, since the mark was not there yet); if it
    /// did, the mark goes and the next exec is held and hashed again.
    private func ignoreLaterExecs(of fd: FileDescriptor, as hashed: FileStatus, on fanotify: Fanotify) {
        guard ignoreMarks < Self.cacheLimit else { return }
        do {
            try fanotify.ignoreUntilModified(.openExecPermission, fileOf: fd)
        } catch {
            logger.warning(
                "exec guard: cannot add an ignore mark; this file's execs stay held", metadata: ["error": "\(error)"])
            return
        }
        ignoreMarks += 1
        if (try? sys_fstat(fd))?.contentVersion != hashed.contentVersion {
            try? fanotify.stopIgnoring(.openExecPermission, fileOf: fd)
        }
    }

    private func remember(_ key: ContentVersion, _ hash: GuardHash) {
        if hashes.count >= Self.cacheLimit { hashes.removeAll(keepingCapacity: true) }
        hashes[key] = hash
    }

    private func root(for path: PathBytes) -> PathBytes? {
        marked.keys.filter { path.isWithin($0) }.max { $0.bytes.count < $1.bytes.count }
    }
}

/// A file's hash as the guard knows it, or why it has none.
enum GuardHash {
    case sha256(String)
    case failed(String)
}

/// One exec of one file by one process: matches a permission event with its notification.
private struct ExecKey: Hashable {
    var pid: Int32
    var device: UInt64
    var inode: UInt64
}
