// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import Logging
import Synchronization
import SystemPackage
import WardenCore
import WardenLinux
import WardenStore

/// Takes, from a running process, what no watched directory holds: an executable that is a memfd
/// or was deleted, one on a watched tmpfs that was never recorded, and the script an
/// interpreter was started with from a tmpfs, a memfd or a deleted file. Everything is read
/// through the process's own links (`/proc/PID/exe`, `/proc/PID/fd/N`, `/proc/PID/root/…`),
/// which yield the bytes for as long as the process holds them, bounded while read, and
/// recorded like a dropped file: the same store, hash, evidence copy and `files` output.
///
/// Called from the exec monitor's thread and from the intake (an alert naming a pid), so its
/// state is behind a lock; the hashing itself is not.
public final class ProcessCapturer: Sendable {
    public struct Settings: Sendable {
        /// The interpreters whose script argument is captured (`exec-monitor.interpreters`).
        public var interpreters: [String] = InterpretedScript.defaultInterpreters
        public var hashSizeCap: Int64 = 256 << 20
        /// The file systems a file may be opened on (`ProcessFacts.openableFileSystems`).
        public var openableFileSystems = ProcessFacts.openableFileSystems
        /// Never taken from: paths below these (the state directory), and processes of these
        /// uids (the sandbox's identities, whose samples are the agent's own runs).
        public var excludedPaths: [PathBytes] = []
        public var ignoredUIDs: ClosedRange<UInt32>?
        public var hashSeconds: Double = 30
        /// Command lines are cut here: a process chooses their length.
        public static let commandLineLimit = 64 << 10

        public init() {}
    }

    private let settings: Settings
    private let interpreters: InterpreterNames
    /// The agent's mount table, and the watched roots on it by device.
    private let ownMounts: OwnMounts
    private let metrics: SensorMetrics
    private let logger: Logger
    private let policy: SharedPolicy?
    /// The newest record of a file by its device and inode (the store's, across restarts).
    private let recordedFile: @Sendable (_ device: UInt64, _ inode: UInt64) -> FileRecord?
    private let record: @Sendable (StoreCommand) -> Bool
    private let keepEvidence: @Sendable (EvidenceJob) -> Bool
    private let onCaptured: @Sendable (FileRecord) -> Void
    private let clock: @Sendable () -> Timestamp
    /// Content versions taken already (true) or being taken now (false): a program run many
    /// times is taken once.
    private let taken = Mutex<[ContentVersion: Bool]>([:])
    private static let takenLimit = 16_384
    /// The boot time, for process start times.
    private let bootTime: Int64?

    init(
        settings: Settings, metrics: SensorMetrics, logger: Logger, policy: SharedPolicy?,
        watchedRoots: @escaping @Sendable ([MountInfoEntry]) -> [UInt64: PathBytes],
        recordedFile: @escaping @Sendable (UInt64, UInt64) -> FileRecord?,
        record: @escaping @Sendable (StoreCommand) -> Bool, keepEvidence: @escaping @Sendable (EvidenceJob) -> Bool,
        onCaptured: @escaping @Sendable (FileRecord) -> Void, clock: @escaping @Sendable () -> Timestamp
    ) {
        self.settings = settings
        self.interpreters = InterpreterNames(settings.interpreters)
        self.metrics = metrics
        self.logger = logger
        self.policy = policy
        self.ownMounts = OwnMounts(watchedRoots: watchedRoots)
        self.recordedFile = recordedFile
        self.record = record
        self.keepEvidence = keepEvidence
        self.onCaptured = onCaptured
        self.clock = clock
        self.bootTime = (try? sys_readFile(Array("/proc/stat".utf8), limit: 1 << 16)).flatMap {
            ProcessFacts.bootTime(procStat: $0)
        }
    }

    /// Captures what process `pid` runs that is worth keeping (its executable, a script it
    /// was given); the records made. Nothing when the process is gone or runs an ordinary program.
    /// - Parameter forAlert: the process an alert names: its executable mappings are walked even
    ///   when nothing else was taken (a process whose executable was taken always has them
    ///   walked), and a capture of the same bytes under way on another thread is waited for
    ///   (2 s at most), so its record is queued before the alert's correlation.
    @discardableResult
    public func capture(pid: Int32, forAlert: Bool = false) -> [FileRecord] {
        let alsoMappings = forAlert
        guard pid > 0 else { return [] }
        let proc = "/proc/\(pid)"
        guard let linkBytes = try? sys_readlink(Array((proc + "/exe").utf8)) else { return [] }
        let link = PathBytes(linkBytes)
        // Decided from the link text first: nearly every exec runs an ordinary program, and
        // that costs this one readlink and no open.
        let fileless = ProcessExecutable.isFileless(link)
        let own = ownMounts.current
        let roots = own.watchedRoots
        let belowRoot = !fileless && roots.values.contains { link.isWithin($0) }
        let interpreter = interpreters.matches(ProcessExecutable.withoutDeletedSuffix(link).bytes)
        guard fileless || belowRoot || interpreter || alsoMappings else { return [] }
        let facts = LazyFacts(pid: pid, bootTime: bootTime, forAlert: forAlert)
        let mounts = ProcessMounts(pid: pid, own: own)
        var made: [FileRecord] = []
        if fileless || belowRoot, isOpenable(executable: link, of: pid, mounts: mounts, forAlert: forAlert),
            let file = try? sys_open(Array((proc + "/exe").utf8), flags: O_RDONLY, followingSymlinks: true)
        {
            var handedOver = false
            defer { if !handedOver { sys_close(file) } }
            if let status = try? sys_fstat(file) {
                let root = roots[status.device]
                let onTmpfs = root != nil && (try? sys_fstatfsType(file)) == tmpfsMagic
                let kind = ProcessExecutable.captureKind(
                    link: link, linkCount: status.linkCount, onWatchedTmpfs: onTmpfs,
                    alreadyRecorded: onTmpfs && recordedFile(status.device, status.inode) != nil)
                if let kind,
                    let record = take(
                        file, status: status, name: link, kind: kind, source: proc + "/exe", facts: facts.value,
                        interpreter: nil, mountPoint: onTmpfs ? root : nil, waitsForOthers: forAlert)
                {
                    handedOver = true
                    made.append(record)
                }
            }
        }
        if interpreter {
            made += captureScripts(pid: pid, interpreter: link, facts: facts, roots: roots, mounts: mounts)
        }
        if !made.isEmpty || alsoMappings {
            made += captureMappings(pid: pid, facts: facts, mounts: mounts)
        }
        return made
    }

    // MARK: What may be opened

    /// Whether a file on the device `major:minor` may be opened: its file system is a local
    /// one (`ProcessFacts.openableFileSystems`), or it is on no mount at all and named as a
    /// memfd (the kernel's internal shm mount). Decided before any open: an open or a read of a
    /// FUSE file waits on its daemon, which whoever mounted it controls.
    private func isOpenable(device: (major: UInt32, minor: UInt32), name: PathBytes, mounts: ProcessMounts) -> Bool {
        if let type = mounts.fileSystem(major: device.major, minor: device.minor) {
            return settings.openableFileSystems.contains(type)
        }
        return name.bytes.starts(with: Array("/memfd:".utf8))
    }

    /// The executable's device, from the process's own maps. An exec names its new executable
    /// a moment before it maps it, and an alert may come in between: for an alert, looked at
    /// again for up to 50 ms while the process is there. (The exec event comes once it is mapped;
    /// a sweep must not wait on a process that unmapped its own executable.)
    private func isOpenable(executable link: PathBytes, of pid: Int32, mounts: ProcessMounts, forAlert: Bool) -> Bool {
        for attempt in 0..<(forAlert ? 25 : 1) {
            if attempt > 0 { usleep(2_000) }
            guard let maps = try? sys_readFile(Array("/proc/\(pid)/maps".utf8), limit: 4 << 20) else { return false }
            if let device = ProcessFacts.mappedDevice(maps: maps, path: link.bytes) {
                return isOpenable(device: device, name: link, mounts: mounts)
            }
        }
        return false
    }

    /// A descriptor's file, by the mount its fdinfo names.
    private func isOpenable(descriptorInfo info: [UInt8], target: PathBytes, mounts: ProcessMounts) -> Bool {
        guard let mountID = ProcessFacts.mountID(fdinfo: info) else { return false }
        if let type = mounts.fileSystem(mountID: mountID) { return settings.openableFileSystems.contains(type) }
        return target.bytes.starts(with: Array("/memfd:".utf8))
    }

    /// Opens the script `argument` of process `pid` as that process would find it, visiting only
    /// the path's own components (no symlink followed) on mounts that are all local: an absolute
    /// path in the process's root, a relative one from its working directory without leaving
    /// that directory's mount. Non-blocking: a FIFO named as the script does not hold the thread.
    private func openScript(_ argument: [UInt8], of pid: Int32, mounts: ProcessMounts) -> FileDescriptor? {
        let flags = O_RDONLY | O_NONBLOCK
        if let absolute = ProcessFacts.lexicallyNormalized(argument) {
            guard mounts.everyMount(onPath: absolute, isIn: settings.openableFileSystems),
                let root = try? sys_openDirectoryLocation(Array("/proc/\(pid)/root".utf8))
            else { return nil }
            defer { sys_close(root) }
            return try? sys_openConfined(absolute, from: root, flags: flags, inRoot: true)
        }
        guard let directory = try? sys_openDirectoryLocation(Array("/proc/\(pid)/cwd".utf8)) else { return nil }
        defer { sys_close(directory) }
        let info = (try? sys_readFile(Array("/proc/self/fdinfo/\(directory.rawValue)".utf8), limit: 1 << 16)) ?? []
        guard let mountID = ProcessFacts.mountID(fdinfo: info),
            let type = mounts.fileSystem(mountID: mountID), settings.openableFileSystems.contains(type)
        else { return nil }
        return try? sys_openConfined(argument, from: directory, flags: flags, inRoot: false)
    }

    /// Whether process `pid` may run something to capture: its executable is a memfd, deleted,
    /// an interpreter, or below a watched root, or it maps code from a memfd or deleted file.
    /// A readlink and at most one read of its maps: the intake's capture thread asks this
    /// before it captures for an alert.
    public func mayHoldSomethingToCapture(pid: Int32) -> Bool {
        guard pid > 0, let link = try? sys_readlink(Array("/proc/\(pid)/exe".utf8)) else { return false }
        let path = PathBytes(link)
        if ProcessExecutable.isFileless(path) { return true }
        let program = ProcessExecutable.withoutDeletedSuffix(path)
        if interpreters.matches(program.bytes) { return true }
        if ownMounts.current.watchedRoots.values.contains(where: { program.isWithin($0) }) { return true }
        let maps = (try? sys_readFile(Array("/proc/\(pid)/maps".utf8), limit: 4 << 20)) ?? []
        return !ProcessFacts.filelessMappings(maps: maps).isEmpty
    }

    /// The scripts an interpreter runs: its script argument, and the regular files it holds
    /// open that are a memfd, deleted, or on a tmpfs (`sh < /dev/shm/payload`, a script read
    /// through a descriptor). Read through the interpreter's own descriptor, so an unlinked
    /// script is still there.
    private func captureScripts(
        pid: Int32, interpreter: PathBytes, facts: LazyFacts, roots: [UInt64: PathBytes], mounts: ProcessMounts
    ) -> [FileRecord] {
        var made: [FileRecord] = []
        let program = ProcessExecutable.withoutDeletedSuffix(interpreter).bytes
        var argumentDescriptor: Int32?
        if let name = InterpretedScript.interpreter(of: program, in: settings.interpreters),
            let argument = InterpretedScript.scriptArgument(facts.arguments, interpreter: name)
        {
            argumentDescriptor = ProcessPath.descriptorNumber(inPath: argument)
            // A descriptor the process names (`/proc/self/fd/3`) is read through its own; the
            // walk below takes it.
            if ProcessPath.descriptorNumber(inPath: argument) == nil,
                let file = openScript(argument, of: pid, mounts: mounts),
                let record = captureScript(
                    file, source: "/proc/\(pid)/root" + String(decoding: argument, as: UTF8.self), pid: pid,
                    interpreter: interpreter, facts: facts)
            {
                made.append(record)
            }
        }
        let descriptors = "/proc/\(pid)/fd"
        guard let directory = try? sys_open(Array(descriptors.utf8), flags: O_RDONLY | O_DIRECTORY) else { return made }
        let entries = (try? sys_readDirectory(directory)) ?? []
        sys_close(directory)
        for (name, _) in entries.prefix(Self.descriptorLimit) {
            // Opened only when its name says it may be one (a memfd, deleted, or below a root),
            // it was opened for reading only (a script is read; a file written, or a memfd the
            // interpreter made, is not one) unless it is the script argument itself, and its
            // mount is a local file system.
            guard let number = Int32(String(decoding: name, as: UTF8.self)),
                let target = (try? sys_readlink(Array("\(descriptors)/\(number)".utf8))).map(PathBytes.init),
                ProcessExecutable.isFileless(target) || roots.values.contains(where: { target.isWithin($0) })
            else { continue }
            let info = (try? sys_readFile(Array("/proc/\(pid)/fdinfo/\(number)".utf8), limit: 1 << 16)) ?? []
            guard
                number == argumentDescriptor
                    || ProcessFacts.openFlags(fdinfo: info).map({ $0 & O_ACCMODE }) == O_RDONLY,
                isOpenable(descriptorInfo: info, target: target, mounts: mounts),
                let file = try? sys_open(
                    Array("\(descriptors)/\(number)".utf8), flags: O_RDONLY | O_NONBLOCK, followingSymlinks: true)
            else { continue }
            if let record = captureScript(
                file, source: "\(descriptors)/\(number)", pid: pid, interpreter: interpreter, facts: facts)
            {
                made.append(record)
            }
        }
        return made
    }

    /// An interpreter may hold thousands of descriptors; scripts are among the first.
    static let descriptorLimit = 256

    /// The executable mappings of process `pid` backed by a memfd or a deleted file (code a
    /// loader mapped without an exec), read through `/proc/PID/map_files`.
    private func captureMappings(pid: Int32, facts: LazyFacts, mounts: ProcessMounts) -> [FileRecord] {
        let maps = (try? sys_readFile(Array("/proc/\(pid)/maps".utf8), limit: 4 << 20)) ?? []
        var made: [FileRecord] = []
        for mapping in ProcessFacts.filelessMappings(maps: maps).prefix(Self.descriptorLimit) {
            let source = "/proc/\(pid)/map_files/\(mapping.range)"
            guard isOpenable(device: (mapping.major, mapping.minor), name: PathBytes(mapping.path), mounts: mounts),
                let file = try? sys_open(Array(source.utf8), flags: O_RDONLY, followingSymlinks: true)
            else {
                continue
            }
            guard let status = try? sys_fstat(file), status.isRegularFile, status.inode == mapping.inode,
                let record = take(
                    file, status: status, name: PathBytes(mapping.path), kind: .mapping, source: source,
                    facts: facts.value, interpreter: nil, mountPoint: nil, waitsForOthers: facts.forAlert)
            else {
                sys_close(file)
                continue
            }
            made.append(record)
        }
        return made
    }

    /// A script of an interpreter, opened as `file`, kept when it is on a tmpfs, a memfd or a
    /// deleted file; `file` is closed unless a record is made.
    private func captureScript(
        _ file: FileDescriptor, source: String, pid: Int32, interpreter: PathBytes, facts: LazyFacts
    ) -> FileRecord? {
        var handedOver = false
        defer { if !handedOver { sys_close(file) } }
        guard let status = try? sys_fstat(file), status.isRegularFile,
            let name = try? sys_readlink(Array("/proc/self/fd/\(file.rawValue)".utf8))
        else { return nil }
        let memfd = name.starts(with: Array("/memfd:".utf8))
        let onTmpfs = (try? sys_fstatfsType(file)) == tmpfsMagic
        guard memfd || onTmpfs || status.linkCount == 0 else { return nil }
        let record = take(
            file, status: status, name: PathBytes(name), kind: .script,
            source: source, facts: facts.value, interpreter: interpreter.displayString,
            mountPoint: onTmpfs ? ownMounts.current.watchedRoots[status.device] : nil, waitsForOthers: facts.forAlert)
        if record != nil { handedOver = true }
        return record
    }

    /// Hashes, records and keeps the evidence of `file`; nil when this content version was
    /// taken already or could not be read. Takes `file` over when it returns a record.
    private func take(
        _ file: FileDescriptor, status: FileStatus, name: PathBytes, kind: ProcessCapture.Kind, source: String,
        facts: Facts, interpreter: String?, mountPoint: PathBytes?, waitsForOthers: Bool = false
    ) -> FileRecord? {
        // The agent's own: its state directory (the sandbox's jail) and the sandbox's identities.
        if settings.excludedPaths.contains(where: { name.isWithin($0) }) { return nil }
        if let ignored = settings.ignoredUIDs, let uid = facts.uid, ignored.contains(uid) { return nil }
        let version = status.contentVersion
        let earlier = taken.withLock { taken -> Bool? in
            if taken.count >= Self.takenLimit { taken = taken.filter { !$0.value } }
            if let done = taken[version] { return done }
            taken[version] = false
            return nil
        }
        if let done = earlier {
            if !done && waitsForOthers { waitForCapture(of: version) }
            return nil
        }
        // This very version recorded before (by an earlier run of the agent): not again.
        if let known = recordedFile(status.device, status.inode), known.size == status.size,
            known.changed.nanosecondsSinceEpoch == status.contentVersion.changed,
            known.modified.nanosecondsSinceEpoch == status.contentVersion.modified
        {
            taken.withLock { $0[version] = true }
            return nil
        }
        let hash: HashResult
        do {
            // A hasher per capture: captures are rare, and come from two threads.
            hash = try FileHasher(bufferSize: 256 << 10).hash(
                file, sizeCap: settings.hashSizeCap, seconds: settings.hashSeconds)
        } catch {
            metrics.add(.captureErrors)
            logger.warning(
                "cannot read a process's executable", metadata: ["process.pid": "\(facts.pid)", "error": "\(error)"])
            _ = taken.withLock { $0.removeValue(forKey: version) }
            return nil
        }
        let classification = ContentClassifier.classify(DescriptorByteSource(fd: file))
        let now = clock()
        var reasons = ExecutableReasons.of(mode: hash.fileStatus.mode, kind: classification.kind)
        if kind == .script { reasons.insert(.interpreted) }
        var capture = ProcessCapture(
            kind: kind, source: source, pid: facts.pid, ppid: facts.ppid, uid: facts.uid, executable: facts.executable,
            commandLine: facts.arguments.map { String(decoding: $0, as: UTF8.self) }, started: facts.started,
            containerID: facts.containerID, interpreter: interpreter, parentExecutable: facts.parentExecutable)
        capture.benign = policy.flatMap { policy in
            Self.benign(sha256: hash.sha256, parent: facts.parentExecutable, allowlist: policy.current.allowlist)
        }
        let gone = kind == .memfd || kind == .deleted || status.linkCount == 0
        let fileStatus = hash.fileStatus
        let record = FileRecord(
            path: name, mountPoint: mountPoint, fileType: .regular, device: fileStatus.device, inode: fileStatus.inode,
            size: fileStatus.size, mode: fileStatus.mode, uid: fileStatus.uid, gid: fileStatus.gid,
            linkCount: fileStatus.linkCount,
            modified: Timestamp(seconds: fileStatus.modifiedSeconds, nanoseconds: fileStatus.modifiedNanoseconds),
            changed: Timestamp(seconds: fileStatus.changedSeconds, nanoseconds: fileStatus.changedNanoseconds),
            firstSeen: now, lastSeen: now, deletedAt: gone ? now : nil, state: gone ? .deleted : .present,
            kind: classification.kind, reasons: reasons, hashStatus: hash.status, sha256: hash.sha256,
            elf: classification.elf, script: classification.script, capture: capture)
        let blob = hash.sha256.map {
            BlobRecord(
                sha256: $0, size: fileStatus.size, kind: classification.kind, elf: classification.elf,
                script: classification.script, evidencePath: nil, firstSeen: now)
        }
        guard self.record(.record(record, blob)) else {
            metrics.add(.captureErrors)
            logger.error(
                "the store's queue is full: a process capture was not recorded",
                metadata: ["process.pid": "\(facts.pid)", "file.path": "\(name)"])
            _ = taken.withLock { $0.removeValue(forKey: version) }
            return nil
        }
        taken.withLock { $0[version] = true }
        metrics.add(.processCaptures)
        if let sha = hash.sha256, hash.status == .ok,
            keepEvidence(EvidenceJob(descriptor: file, sha256: sha, size: fileStatus.size, path: name))
        {
            // The evidence keeper holds the descriptor now, and closes it.
        } else {
            sys_close(file)
            if let sha = hash.sha256, hash.status == .ok {
                _ = self.record(.evidenceSkipped(sha256: sha, reason: "the evidence queue was full"))
            }
        }
        logger.notice(
            "captured from a running process",
            metadata: [
                "capture.kind": "\(kind.rawValue)", "process.pid": "\(facts.pid)", "file.path": "\(name)",
                "file.sha256": "\(hash.sha256 ?? "-")", "capture.benign": "\(capture.benign ?? "no")",
            ])
        onCaptured(record)
        return record
    }

    /// Waits (2 s at most) until the capture of `version` another thread has under way is
    /// queued to the store or given up.
    private func waitForCapture(of version: ContentVersion) {
        let deadline = sys_monotonicNanoseconds() + 2_000_000_000
        while sys_monotonicNanoseconds() < deadline, taken.withLock({ $0[version] == false }) {
            usleep(2_000)
        }
    }

    /// Why a capture is known benign: its hash is allowlisted, or its parent's executable is one
    /// of the allowlist's `fileless-parents` (runc re-executes itself from a memfd).
    static func benign(sha256: String?, parent: PathBytes?, allowlist: Allowlist) -> String? {
        if let sha256, allowlist.sha256.contains(sha256) { return "allowlist sha256" }
        if let parent, let program = parent.utf8String,
            allowlist.filelessParents.contains(ProcessExecutable.withoutDeletedSuffix(PathBytes(program)).displayString)
        {
            return "allowlist fileless-parents \(program)"
        }
        return nil
    }

    /// The facts of a process, read at first use (most looks take nothing), then kept.
    final class LazyFacts {
        let pid: Int32
        let bootTime: Int64?
        /// The look is for an alert (see `capture(pid:forAlert:)`).
        let forAlert: Bool
        private var read: Facts?
        private var commandLine: [[UInt8]]?

        init(pid: Int32, bootTime: Int64?, forAlert: Bool) {
            self.pid = pid
            self.bootTime = bootTime
            self.forAlert = forAlert
        }

        var value: Facts {
            if let read { return read }
            let facts = Facts(pid: pid, bootTime: bootTime)
            read = facts
            return facts
        }

        /// The command line alone, for an interpreter's script argument.
        var arguments: [[UInt8]] {
            if let read { return read.arguments }
            if let commandLine { return commandLine }
            let arguments = ProcessFacts.arguments(
                commandLine: (try? sys_readFile(Array("/proc/\(pid)/cmdline".utf8), limit: Settings.commandLineLimit))
                    ?? [])
            commandLine = arguments
            return arguments
        }
    }

    /// What `/proc/PID/…` says about the process, read once per capture.
    struct Facts {
        var pid: Int32
        var ppid: Int32?
        var uid: UInt32?
        var executable: PathBytes
        var arguments: [[UInt8]]
        var started: Timestamp?
        var containerID: String?
        var parentExecutable: PathBytes?

        init(pid: Int32, bootTime: Int64?) {
            let proc = "/proc/\(pid)/"
            func read(_ name: String, limit: Int = 1 << 16) -> [UInt8] {
                (try? sys_readFile(Array((proc + name).utf8), limit: limit)) ?? []
            }
            self.pid = pid
            (ppid, uid) = ProcessFacts.parentAndUID(status: read("status"))
            executable = PathBytes((try? sys_readlink(Array((proc + "exe").utf8))) ?? [])
            arguments = ProcessFacts.arguments(commandLine: read("cmdline", limit: Settings.commandLineLimit))
            started = ProcessFacts.startTicks(stat: read("stat")).flatMap { ticks in
                bootTime.flatMap {
                    ProcessFacts.started(ticks: ticks, bootTime: $0, ticksPerSecond: sys_clockTicksPerSecond())
                }
            }
            containerID = ProcessFacts.containerID(cgroup: read("cgroup"))
            parentExecutable = ppid.flatMap { try? sys_readlink(Array("/proc/\($0)/exe".utf8)) }.map(PathBytes.init)
        }
    }
}

/// A mount table with its lookups by device and by mount id.
struct MountLookup: Sendable {
    let entries: [MountInfoEntry]
    private let byDevice: [UInt64: String]
    private let byID: [Int: String]

    init(_ entries: [MountInfoEntry]) {
        self.entries = entries
        var byDevice: [UInt64: String] = [:]
        var byID: [Int: String] = [:]
        for entry in entries {
            byDevice[UInt64(entry.major) << 32 | UInt64(entry.minor)] =
                byDevice[UInt64(entry.major) << 32 | UInt64(entry.minor)] ?? entry.fsType
            byID[entry.mountID] = entry.fsType
        }
        self.byDevice = byDevice
        self.byID = byID
    }

    func fileSystem(major: UInt32, minor: UInt32) -> String? { byDevice[UInt64(major) << 32 | UInt64(minor)] }
    func fileSystem(mountID: Int) -> String? { byID[mountID] }
}

/// The agent's own mount table and mount namespace, read at most once a second: most processes
/// share the namespace, and their files are looked up here without a parse of their own table;
/// the watched roots by device (is an exec'd program below one?) come from the same read.
final class OwnMounts: Sendable {
    struct Snapshot: Sendable {
        var lookup: MountLookup
        var namespace: [UInt8]
        /// The watched roots by device, from the same table.
        var watchedRoots: [UInt64: PathBytes]
    }

    private let watchedRoots: @Sendable ([MountInfoEntry]) -> [UInt64: PathBytes]
    private let cached = Mutex<(snapshot: Snapshot?, readAt: Int64)>((nil, 0))

    init(watchedRoots: @escaping @Sendable ([MountInfoEntry]) -> [UInt64: PathBytes]) {
        self.watchedRoots = watchedRoots
    }

    var current: Snapshot {
        let now = sys_monotonicNanoseconds()
        if let fresh = cached.withLock({ state in now - state.readAt < 1_000_000_000 ? state.snapshot : nil }) {
            return fresh
        }
        let entries = (try? MountTable.read()) ?? []
        let snapshot = Snapshot(
            lookup: MountLookup(entries),
            namespace: (try? sys_readlink(Array("/proc/\(sys_getpid())/ns/mnt".utf8))) ?? [],
            watchedRoots: watchedRoots(entries))
        cached.withLock { $0 = (snapshot, now) }
        return snapshot
    }
}

/// The mounts of one process: the agent's own table when the process shares its mount
/// namespace, else `/proc/PID/mountinfo` read at first use (the agent's added for the mount of
/// a descriptor it opened itself). Which file system a file is on, found without touching it.
final class ProcessMounts {
    private let pid: Int32
    private let own: MountLookup
    private let ownNamespace: [UInt8]
    private var processLookup: MountLookup?

    init(pid: Int32, own: OwnMounts.Snapshot) {
        self.pid = pid
        self.own = own.lookup
        self.ownNamespace = own.namespace
    }

    private var process: MountLookup {
        if let processLookup { return processLookup }
        let namespace = try? sys_readlink(Array("/proc/\(pid)/ns/mnt".utf8))
        let lookup: MountLookup
        if let namespace, !ownNamespace.isEmpty, namespace == ownNamespace {
            lookup = own
        } else {
            let text = (try? sys_readFile(Array("/proc/\(pid)/mountinfo".utf8), limit: 4 << 20)) ?? []
            lookup = MountLookup((try? MountInfoParser.parse(text)) ?? [])
        }
        processLookup = lookup
        return lookup
    }

    func fileSystem(major: UInt32, minor: UInt32) -> String? {
        process.fileSystem(major: major, minor: minor) ?? own.fileSystem(major: major, minor: minor)
    }

    func fileSystem(mountID: Int) -> String? {
        process.fileSystem(mountID: mountID) ?? own.fileSystem(mountID: mountID)
    }

    /// Whether every mount a lookup of `path` (absolute, normalized, in the process's root) may
    /// cross is of `types`: each visible mount whose mount point is `path` or above it.
    func everyMount(onPath path: [UInt8], isIn types: Set<String>) -> Bool {
        let crossed = MountInfoParser.visible(process.entries).filter {
            PathBytes(path).isWithin(PathBytes($0.mountPoint))
        }
        return !crossed.isEmpty && crossed.allSatisfy { types.contains($0.fsType) }
    }
}
