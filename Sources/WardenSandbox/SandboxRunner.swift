// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Synchronization
import SystemPackage
import WardenCore
import WardenLinux

/// Runs a copy of a sample in the jail and reports what it did.
///
/// The supervisor (this type) prepares three tmpfs mounts at `<state>/sandbox/jail`, in a mount
/// namespace of the run's own: the jail's root (exec allowed; the sample copied in and its hash
/// verified), its /tmp and its /dev/shm; builds the seccomp filter; and hands everything to the
/// C launcher, which clones the namespaces and runs only system calls until the execveat. Then
/// it answers the notifications, bounds the output, kills the whole pid namespace at the
/// deadline, counts the refused calls from the kernel's audit records, and keeps what the sample
/// wrote in /tmp and /dev/shm as evidence.
public struct SandboxRunner: Sendable {
    public struct Options: Sendable {
        public var timeoutSeconds: Int = 10
        public var arguments: [String] = []
        /// Observe with seccomp user notification (off: the filter only, for measuring its cost).
        public var observe = true
        /// Trace what the kernel returned for the observed calls (`SyscallExitTrace`): its
        /// program runs at every system call's exit while the sample runs (a syscall-heavy
        /// sample takes 4-15% longer). Off, the report says "tried" where it would say "refused".
        public var traceResults = true
        /// Answer each host name with an address of its own that leads to the sink
        /// (`SandboxNameBook`). Off, every name but localhost is "not found", as before: for a
        /// sample that checks that a name which should not exist does not resolve.
        public var answerNames = true
        public var outputLimit = 64 * 1024
        public var memoryLimit: UInt64 = 1 << 30
        public var fileSizeLimit: UInt64 = 64 << 20
        public var openFilesLimit: UInt64 = 256
        public var processLimit: UInt64 = 64
        /// What all of the run's processes together may take (its cgroup's memory.max).
        public var totalMemoryLimit: Int64 = 1 << 30
        /// CPUs' worth of time the run may take (its cgroup's cpu.max).
        public var cpuLimit: Double = 1
        /// Where no cgroup can be had, rlimits alone bound the run: the process count is cut so
        /// that their address spaces together stay within this.
        public var rlimitOnlyBudget: Int64 = 4 << 30
        /// The uids (and gids) the run may take one of (`SandboxRunner.identities`).
        public var identities = SandboxRunner.identities
        public init() {}
    }

    /// Pays, on the calling thread, what a run of `options` would otherwise pay on its way: the
    /// filter's build (once per process) and, with the results traced, the trace's load (kept
    /// for the next run, which attaches it). For a thread that starts before the run (the
    /// command's database thread).
    public static func prepare(for options: Options) {
        _ = try? SandboxFilter.shared(observe: options.observe)
        if options.observe && options.traceResults { SandboxObserver.preloadExitTrace() }
    }

    /// The unprivileged identities samples run as, uid and gid alike (no such users on a normal
    /// host). Each run holds one of its own for as long as it runs (`SandboxIdentityLease`).
    public static let identities: ClosedRange<UInt32> = (2_147_483_646 - 4095)...2_147_483_646
    /// Where in the range the next run of this process starts looking: runs take the identities
    /// in turn, from a place that depends on the process, so that a free one is usually the
    /// first tried.
    private static let nextIdentity = Atomic<UInt32>(UInt32(truncatingIfNeeded: getpid()) &* 61)
    /// The CPU the next jail runs on: jails take the CPUs in turn, from a place that depends on
    /// the process, so two at once (the agent's and a `shmwarden sandbox` command's, or two
    /// commands') do not share one while another idles: each process started at CPU 0 before.
    private static let nextCPU = Atomic<Int>(Int(getpid()))

    let directory: String
    /// The jail's root tmpfs, and the largest sample it takes (the rest holds its few files).
    static let rootBytes: Int64 = 256 << 20
    public static let sampleSizeLimit: Int64 = rootBytes - (1 << 20)

    /// - Parameter directory: `<state>/sandbox`.
    public init(directory: String) { self.directory = directory }

    public struct RunError: Error, CustomStringConvertible {
        public var description: String
        /// The sample itself cannot run here (not a regular file, too large): the caller's
        /// input, not a failure of the jail.
        public var isUnsuitableSample = false
    }

    /// Runs the regular file at `path` (read through one descriptor, never by path again) as
    /// `/sample/<name>`: by default `path`'s last component (the agent passes the dropped file's
    /// own name for its content-addressed evidence copy: a sample may check what it is called).
    public func run(path: PathBytes, name: [UInt8]? = nil, options: Options = Options()) throws -> SandboxReport {
        let source: FileDescriptor
        do {
            source = try sys_open(path.bytes, flags: O_RDONLY)
        } catch {
            throw RunError(description: "cannot open \(path): \(error)")
        }
        defer { sys_close(source) }
        guard let status = try? sys_fstat(source), status.isRegularFile else {
            throw RunError(description: "\(path) is not a regular file", isUnsuitableSample: true)
        }
        return try run(
            source: source,
            name: Self.sampleName(name ?? path.bytes),
            options: options)
    }

    /// The last component of `path`, or `sample` when it has none.
    static func sampleName(_ path: [UInt8]) -> [UInt8] {
        path.split(separator: UInt8(ascii: "/")).last.map(Array.init) ?? Array("sample".utf8)
    }

    /// Runs the sample on a thread of its own in a mount namespace of its own: the jail's tmpfs
    /// mounts never appear on the host (where the agent would watch them as tmpfs mounts), and
    /// the kernel removes them when the thread is gone, even when this process is killed
    /// mid-run (mounted on the host, a `kill -9` during a run left both behind for good).
    func run(source: FileDescriptor, name: [UInt8], options: Options) throws -> SandboxReport {
        // Said before anything is mounted: a copy that fills the root fails with a bare ENOSPC.
        if let size = try? sys_fstat(source).size, size > Self.sampleSizeLimit {
            throw RunError(
                description: "the sample is \(size) bytes; the jail's root takes samples of at most "
                    + "\(Self.sampleSizeLimit) bytes",
                isUnsuitableSample: true)
        }
        let outcome = Outcome()
        ThreadJoin.start(name: "warden-jail") {
            outcome.result = Result {
                do {
                    try sys_privateMountNamespace()
                } catch {
                    throw RunError(description: "cannot make a private mount namespace for the jail: \(error)")
                }
                return try runInPrivateNamespace(source: source, name: name, options: options)
            }
        }.join()
        guard let result = outcome.result else {
            throw RunError(description: "the jail's thread ended without an outcome")
        }
        return try result.get()
    }

    /// What the jail's thread came to, read after it is joined (the join orders the accesses).
    /// A class of its own: a `Result`, or a `Mutex` of the two, cost a protocol conformance
    /// lookup (the runtime's scan of the binary's records) as it was released, on the way to
    /// the report.
    private final class Outcome: @unchecked Sendable {
        var result: Result<SandboxReport, any Error>?
    }

    private func runInPrivateNamespace(source: FileDescriptor, name: [UInt8], options: Options) throws -> SandboxReport
    {
        let id = "s" + String(UInt64(sys_monotonicNanoseconds()), radix: 36)
        // Every run mounts its root on the same directory, each in its own mount namespace: no
        // run makes or removes a directory on the host unless it keeps what the sample wrote
        // (`<id>/written`), so a run killed midway leaves nothing behind.
        let root = directory + "/jail"
        // The jail's /tmp and /dev/shm: tmpfs mounts of their own, mounted inside the root's, so
        // that the jail's recursive bind of the root carries them and one detaching unmount
        // removes all three. /dev/shm is where a dropper puts its next stage: the sample finds it
        // writable (and executable) as on a host, and what it leaves there is kept.
        let tmp = root + "/tmp"
        let devShm = root + "/dev/shm"
        for path in [directory, root] { try? sys_mkdir(Array(path.utf8), permissions: 0o700) }
        // These mounts are in this thread's namespace only, and go with it: the kernel unmounts
        // them when the thread exits, after it has handed over the report, so no unmount is
        // on the way to the report.
        let noSuidNoDev = UInt(MS_NOSUID) | UInt(MS_NODEV)
        try wrap { () throws(SystemCallError) in
            try sys_mountTmpfs(Array(root.utf8), options: "size=\(Self.rootBytes >> 20)m,mode=0755", flags: noSuidNoDev)
        }

        // Held until the run is over: its processes are gone and its refused calls counted.
        let lease: SandboxIdentityLease
        do {
            lease = try SandboxIdentityLease.acquire(
                in: options.identities, start: Self.nextIdentity.add(1, ordering: .relaxed).oldValue)
        } catch {
            throw RunError(description: "sandbox preparation: \(error)")
        }
        defer { lease.release() }
        let identity = lease.identity
        let binds = try prepareRoot(root, identity: identity)
        try wrap { () throws(SystemCallError) in
            try sys_mountTmpfs(Array(tmp.utf8), options: "size=64m,mode=1777", flags: noSuidNoDev)
            try sys_mkdir(Array(devShm.utf8), permissions: 0o755)
            try sys_mountTmpfs(Array(devShm.utf8), options: "size=64m,mode=1777", flags: noSuidNoDev)
        }
        let names = try wrap { () throws(SystemCallError) in
            try SandboxNameService(root: root, answerNames: options.answerNames)
        }
        names.start()
        // Stopped once the sample is gone; on a failed setup, before the jail is unmounted.
        var lookups: [SandboxReport.NameLookup]?
        defer { if lookups == nil { _ = names.stop() } }
        let (sha256, sampleFD) = try copySample(source, into: root, name: name)
        defer { sys_close(sampleFD) }
        let filter = try SandboxFilter.shared(observe: options.observe)
        let (stdoutRead, stdoutWrite) = try wrap { () throws(SystemCallError) in try sys_pipe() }
        let (stderrRead, stderrWrite) = try wrap { () throws(SystemCallError) in try sys_pipe() }
        // Writable by the sample, as its terminal or pipe is on a host: `echo … > /dev/stderr`
        // opens the pipe again through /proc/self/fd, which checks the pipe's mode (root's are
        // 0600). A mode change, not a chown: the agent's unit has no CAP_CHOWN. Only processes
        // that hold the pipe, or may ptrace one that does, can reach it at all.
        try wrap { () throws(SystemCallError) in
            try sys_fchmod(stdoutWrite, 0o622)
            try sys_fchmod(stderrWrite, 0o622)
        }
        let (statusRead, statusWrite) = try wrap { () throws(SystemCallError) in try sys_pipe() }
        let (notifyReceive, notifySend) = try wrap { () throws(SystemCallError) in try sys_socketPair() }
        defer { [stdoutRead, stderrRead, statusRead, notifyReceive].forEach(sys_close) }
        let audit = KernelAuditReader()

        // The bytes as they are (a name need not be UTF-8); the report shows them decoded.
        let argvBytes = [Array("/sample/".utf8) + name] + options.arguments.map { Array($0.utf8) }
        let argv = argvBytes.map { String(decoding: $0, as: UTF8.self) }
        let environment = ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp", "LANG=C"]
        // A ceiling for the whole run: a cgroup leaf of its own, or, where none can be had, a
        // process count cut so that rlimits bound the run's memory all together.
        let (cgroup, noCgroup) = SandboxCgroup.make(
            id: id,
            limits: .init(
                memoryBytes: options.totalMemoryLimit, processes: Int(options.processLimit), cpus: options.cpuLimit))
        defer { cgroup?.remove() }
        let processLimit =
            cgroup != nil
            ? options.processLimit
            : min(options.processLimit, UInt64(max(4, options.rlimitOnlyBudget / Int64(max(1, options.memoryLimit)))))
        // The jail runs on one CPU, and its observer with it: each notification then hands over
        // between the two on that CPU, where waking the sample on another (idle, in a VM: a
        // halted vCPU) made observation cost about 1.5x instead of 1.3x. It also keeps a sample
        // from occupying more than one CPU of the host. Processes inherit the spawning thread's
        // mask, so this thread is pinned for the spawn and put back after.
        let previousAffinity = sys_threadAffinity()
        let cpu = Self.pinToNextCPU()
        // The observer waits before the spawn: the sample's first notified call (its own exec)
        // then does not wait for a thread to start.
        let observer = SandboxObserver()
        observer.nameServer = names
        observer.traceResults = options.traceResults
        observer.jailRoot = Array(root.utf8)
        let sink = try wrap { () throws(SystemCallError) in try SandboxConnectionSink(names: names) }
        observer.sink = sink
        let observing =
            options.observe
            ? ThreadJoin.start(name: "warden-observe") {
                // On any CPU (this thread inherited the spawning thread's pin) while the jail is
                // being set up, then on the jail's.
                if let previousAffinity { try? sys_setThreadAffinity(previousAffinity) }
                observer.prepare()
                if let cpu { try? sys_pinThread(toCPU: cpu) }  // a thread of its own: no need to put back
                var fds = [pollfd(fd: notifyReceive.rawValue, events: Int16(POLLIN), revents: 0)]
                // The listener arrives before the sample runs; nothing comes if setup failed (the
                // socket's other end is closed right after the spawn).
                guard (try? sys_poll(&fds, timeout: 10_000)) ?? 0 > 0, fds[0].revents & Int16(POLLIN) != 0,
                    let listener = try? sys_receiveDescriptor(notifyReceive)
                else { return }
                defer { sys_close(listener) }
                observer.serve(listener)
            } : nil
        let started = sys_monotonicNanoseconds()
        let spawn = SandboxSpawn(
            root: Array(root.utf8), binds: binds.map { .init(path: Array($0.path.utf8), isDevice: $0.device) },
            sample: sampleFD, arguments: argvBytes, environment: environment.map { Array($0.utf8) },
            uid: identity, gid: identity,
            cpuSeconds: .init(soft: UInt64(options.timeoutSeconds + 1), hard: UInt64(options.timeoutSeconds + 2)),
            addressSpaceBytes: .init(soft: options.memoryLimit, hard: options.memoryLimit),
            fileSizeBytes: .init(soft: options.fileSizeLimit, hard: options.fileSizeLimit),
            openFiles: .init(soft: options.openFilesLimit, hard: options.openFilesLimit),
            processes: .init(soft: processLimit, hard: processLimit), filter: filter.program,
            listenerSocket: options.observe ? notifySend : nil, standardOutput: stdoutWrite,
            standardError: stderrWrite, statusPipe: statusWrite, hostname: Array("sandbox".utf8),
            cgroupProcs: cgroup?.procs ?? [])
        let spawned = Result { () throws(SystemCallError) in try sys_spawnSandbox(spawn) }
        if let previousAffinity { try? sys_setThreadAffinity(previousAffinity) }
        // Our copies of the children's ends: EOF comes when the children are gone.
        [stdoutWrite, stderrWrite, statusWrite, notifySend].forEach(sys_close)
        let initPID: Int32
        switch spawned {
        case .success(let pid): initPID = pid
        case .failure(let error):
            observing?.join()  // it sees the closed socket and returns; it must not outlive the descriptors
            throw RunError(description: "the sandbox could not be started: \(error)")
        }
        // The trace of what the calls come to, while the jail is being set up.
        if options.observe && options.traceResults { observer.prepareExitTrace(initPID) }
        let stdoutCapture = OutputCapture(stdoutRead, limit: options.outputLimit)
        let stderrCapture = OutputCapture(stderrRead, limit: options.outputLimit)

        // Wait for the namespace's init, or kill it (and with it every process in the namespace).
        let (timedOut, stillRunning) = Self.wait(for: initPID, seconds: options.timeoutSeconds)
        _ = try? sys_waitpid(initPID)
        let duration = Double(sys_monotonicNanoseconds() - started) / 1e6
        audit.runEnded()
        observing?.join()
        // The sink first: it may still answer DNS over TCP from the name service's book.
        let sunk = sink.stop()
        let (looked, book) = names.stop()
        lookups = looked
        let network = Self.network(observer.network, named: book, sunk: sunk, at: observer.connectionEvents)
        lookups? += sunk.sorted { $0.key < $1.key }.filter { observer.connectionEvents[$0.key] != nil }
            .flatMap(\.value.lookups)
        let (stdout, stdoutTruncated) = stdoutCapture.finish()
        let (stderr, stderrTruncated) = stderrCapture.finish()
        let statuses = SandboxSpawn.Status.decode((try? sys_readToEnd(statusRead)) ?? [])

        let (exit, setupError) = Self.outcome(of: statuses, timedOut: timedOut) {
            Self.execRefusal($0, sample: sampleFD)
        }
        let (written, writtenTruncated) = collectWritten(
            [(tmp, "/tmp"), (devShm, "/dev/shm")], into: directory + "/" + id)
        var report = SandboxReport(
            id: id, sha256: sha256, argv: argv, uid: identity, exit: exit, timedOut: timedOut,
            stillRunning: stillRunning,
            durationMs: (duration * 10).rounded() / 10,
            syscalls: observer.syscalls, i386Calls: observer.compatibleCalls,
            denied: Self.denied(audited: audit.deniedCalls(uid: identity), observer: observer),
            network: network,
            lookups: (lookups ?? []) + observer.lookups,
            files: observer.files, processes: observer.processes, signals: observer.signals, written: written,
            writtenTruncated: writtenTruncated,
            stdout: stdout, stderr: stderr, stdoutTruncated: stdoutTruncated, stderrTruncated: stderrTruncated,
            setupError: setupError, verdict: [])
        report.resultsError = observer.exitTraceError
        report.resources =
            cgroup?.outcome()
            ?? .init(
                cgroup:
                    "none (\(noCgroup ?? "unavailable")): rlimits alone, \(processLimit) processes of \(options.memoryLimit) bytes",
                memoryLimitBytes: Int64(options.memoryLimit) * Int64(processLimit), processLimit: Int(processLimit),
                cpuLimit: nil)
        report.verdict = SandboxVerdict.sentences(report)
        return report
    }

    /// Pins the calling thread to the next CPU in turn (runs spread over the host's CPUs), or,
    /// where that one is not ours to use (a cpuset), to the one it is on; that CPU, or nil.
    private static func pinToNextCPU() -> Int32? {
        let turn = nextCPU.add(1, ordering: .relaxed).oldValue
        let chosen = Int32(turn % max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        if (try? sys_pinThread(toCPU: chosen)) != nil { return chosen }
        guard let current = sys_currentCPU(), (try? sys_pinThread(toCPU: current)) != nil else { return nil }
        return current
    }

    /// The observer's network attempts with the names the jail's name book gave their addresses,
    /// and, for each connection to the sink (`connectionEvents`: where its connect is), what the
    /// sample sent on it and what the sink answered.
    static func network(
        _ attempts: [SandboxReport.NetworkAttempt], named book: SandboxNameBook,
        sunk: [Int: SandboxConnectionSink.Received], at connectionEvents: [Int: Int]
    ) -> [SandboxReport.NetworkAttempt] {
        var network = attempts
        for index in network.indices where network[index].family != "AF_UNIX" {
            if let address = network[index].address, let bytes = SandboxNameBook.addressBytes(address) {
                network[index].hostName = book.name(of: bytes)
            }
        }
        for (connection, received) in sunk {
            guard let index = connectionEvents[connection] else { continue }
            network[index].sentBytes = received.total
            network[index].sent = PathBytes(received.bytes).displayString
            network[index].sentBase64 = PathBytes(received.bytes).base64
            network[index].tlsServerName = TLSClientHello.serverName(in: received.bytes)
            network[index].sinkAnswer = received.answer?.summary
        }
        return network
    }

    /// How the sample ended, or why the jail could not start it, from the launcher's status
    /// records; `execRefusal` explains a failed exec of the sample from its errno.
    static func outcome(
        of statuses: [SandboxSpawn.Status], timedOut: Bool, execRefusal: (Int32) -> String
    ) -> (SandboxReport.Exit, setupError: String?) {
        var exit = SandboxReport.Exit(code: nil, signal: nil)
        var setupError: String?
        if let failure = statuses.first(where: { $0.failedStage != nil }), let stage = failure.failedStage {
            setupError =
                stage == "execveat"
                ? execRefusal(failure.errno)
                : "sandbox setup failed at stage \(stage): \(Errno(rawValue: failure.errno))"
        } else if let end = statuses.last(where: { $0.failedStage == nil }) {
            exit.code = end.exitCode
            exit.signal = end.signal
        }
        if timedOut && exit.code == nil && exit.signal == nil {
            exit = .init(code: nil, signal: SIGKILL, atTimeLimit: true)
        }
        return (exit, setupError)
    }

    /// The calls refused or killed for: the filter's, from the kernel's audit records, and the
    /// IPv4 and IPv6 sockets the observer refused (a raw one, say), which have none of their own.
    static func denied(audited: [String: Int], observer: SandboxObserver) -> [String: Int] {
        guard observer.refusedSockets > 0 else { return audited }
        return audited.merging(["socket": observer.refusedSockets], uniquingKeysWith: +)
    }

    // MARK: - Preparation

    struct Bind {
        var path: String
        var device: Bool
    }

    /// Directories, symlinks and bind targets of a minimal root: what a dynamic ELF needs, read-only.
    private func prepareRoot(_ root: String, identity: UInt32) throws -> [Bind] {
        var binds: [Bind] = []
        // Modes are set explicitly: the process umask (the agent runs with 077) must not make the
        // jail's directories unsearchable for the sandbox uid.
        for name in ["usr", "etc", "dev", "proc", "tmp", "sample", ".oldroot"] {
            let path = Array((root + "/" + name).utf8)
            try wrap { () throws(SystemCallError) in
                try sys_mkdir(path, permissions: 0o755)
                try sys_chmod(path, 0o755)
            }
        }
        binds.append(Bind(path: "/usr", device: false))
        // Merged-/usr systems have /bin → usr/bin: the same symlinks inside; else bind the directory.
        // (One list with what a refused exec's explanation calls shared.)
        for directory in ExecRefusal.sharedDirectories where directory != "/usr" {
            let name = String(directory.dropFirst())
            let hostPath = Array("/\(name)".utf8)
            guard let status = try? sys_lstat(hostPath) else { continue }
            let target = Array((root + "/" + name).utf8)
            if status.isSymlink, let link = try? sys_readlink(hostPath) {
                try wrap { () throws(SystemCallError) in try sys_symlink(link, at: target) }
            } else if status.isDirectory {
                try wrap { () throws(SystemCallError) in
                    try sys_mkdir(target, permissions: 0o755)
                    try sys_chmod(target, 0o755)
                }
                binds.append(Bind(path: "/\(name)", device: false))
            }
        }
        // Only the loader's files from the host's /etc: nothing else of its configuration (no shadow).
        for file in ["/etc/ld.so.cache", "/etc/ld.so.conf"]
        where (try? sys_lstat(Array(file.utf8)))?.isRegularFile == true {
            try createEmpty(root + file)
            binds.append(Bind(path: file, device: false))
        }
        // A few files of its own, so that name lookups work without anything of the host's.
        let uid = identity
        let etc: [(String, String)] = [
            ("passwd", "root:x:0:0:root:/root:/bin/sh\nsandbox:x:\(uid):\(uid):sandbox:/tmp:/bin/sh\n"),
            ("group", "root:x:0:\nsandbox:x:\(uid):\n"),
            ("hosts", "127.0.0.1 localhost sandbox\n::1 localhost\n"),
            // glibc asks the jail's nscd socket first, and takes its answer as final; a resolver
            // of its own (Go's) reads these two, and asks the jail's name server, which answers at
            // once (`SandboxNameService`).
            ("nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n"),
            ("resolv.conf", "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"),
        ]
        for (name, content) in etc {
            try wrap { () throws(SystemCallError) in
                let fd = try sys_create(Array((root + "/etc/" + name).utf8), flags: O_WRONLY, permissions: 0o644)
                defer { sys_close(fd) }
                try sys_fchmod(fd, 0o644)
                let bytes = Array(content.utf8)
                try bytes.withUnsafeBufferPointer { (buffer) throws(SystemCallError) in
                    try sys_writeAll(fd, UnsafeRawBufferPointer(buffer))
                }
            }
        }
        for device in ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"] {
            try createEmpty(root + device)
            binds.append(Bind(path: device, device: true))
        }
        // /dev/fd and /dev/std{in,out,err}, which shell scripts write to (`echo … > /dev/stderr`).
        let links = [
            ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ]
        for (name, target) in links {
            try wrap { () throws(SystemCallError) in
                try sys_symlink(Array(target.utf8), at: Array((root + "/dev/" + name).utf8))
            }
        }
        return binds
    }

    private func createEmpty(_ path: String) throws {
        let fd = try wrap { () throws(SystemCallError) in
            try sys_create(Array(path.utf8), flags: O_WRONLY, permissions: 0o644)
        }
        try? sys_fchmod(fd, 0o644)
        sys_close(fd)
    }

    /// Copies the sample into the jail, checks the copy hashes like the source, and opens it for
    /// the execveat: the bytes hashed are the bytes that run.
    private func copySample(_ source: FileDescriptor, into root: String, name: [UInt8]) throws -> (
        String, FileDescriptor
    ) {
        let path = Array((root + "/sample/").utf8) + name
        let digest = DescriptorDigest()
        let read = try wrap { () throws(SystemCallError) in
            let out = try sys_create(path, flags: O_WRONLY, permissions: 0o755)
            defer { sys_close(out) }
            try sys_fchmod(out, 0o755)
            return try digest.copy(from: source, to: out, limit: .bytes(Self.sampleSizeLimit, seconds: 60))
        }
        guard case .complete(let sha256, let bytes) = read else {
            throw RunError(
                description:
                    "the sample grew past the jail's \(Self.sampleSizeLimit) bytes while it was copied, or took over 60 s to copy"
            )
        }
        let copied = (sha256: sha256, bytes: bytes)
        let fd = try wrap { () throws(SystemCallError) in try sys_open(path, flags: O_RDONLY) }
        let verified = try wrap { () throws(SystemCallError) in
            try digest.sha256(of: fd, limit: ReadLimit(maxBytes: copied.bytes)).sha256
        }
        guard verified == copied.sha256 else {
            sys_close(fd)
            throw RunError(description: "the sample's copy does not hash like the source")
        }
        return (copied.sha256, fd)
    }

    // MARK: - After the run

    /// Returns whether the deadline passed (and the namespace was killed), and the processes
    /// that were still running then.
    private static func wait(for pid: Int32, seconds: Int) -> (Bool, [SandboxReport.Survivor]) {
        guard let pidfd = try? sys_pidfdOpen(pid) else { return (false, []) }
        defer { sys_close(pidfd) }
        var fds = [pollfd(fd: pidfd.rawValue, events: Int16(POLLIN), revents: 0)]
        let deadline = sys_monotonicNanoseconds() + Int64(seconds) * 1_000_000_000
        while true {
            let left = Int32(max(0, (deadline - sys_monotonicNanoseconds()) / 1_000_000))
            if ((try? sys_poll(&fds, timeout: left)) ?? 0) > 0 { return (false, []) }
            if sys_monotonicNanoseconds() >= deadline {
                let survivors = SandboxSurvivors.list(initPID: pid)
                // The init dies, and the kernel kills every process of its pid namespace.
                try? sys_pidfdSendSignal(pidfd, SIGKILL)
                return (true, survivors)
            }
        }
    }

    /// Why the exec of the sample failed, from the errno and the sample's first 64 KiB (where an
    /// ELF's program headers and loader path are, in every linker's layout).
    private static func execRefusal(_ error: Int32, sample: FileDescriptor) -> String {
        var head = [UInt8](repeating: 0, count: 64 << 10)
        let got = head.withUnsafeMutableBytes { (try? sys_pread(sample, into: $0, at: 0)) ?? 0 }
        head.removeLast(head.count - got)
        let cause: ExecRefusal.Cause =
            switch error {
            case ENOENT: .missingFile
            case ENOEXEC: .unknownFormat
            default: .other
            }
        return ExecRefusal.explanation(
            cause: cause, errorText: "\(Errno(rawValue: error))", head: head,
            size: (try? sys_fstat(sample).size) ?? Int64(got),
            presentOnHost: { (try? sys_lstat(Array($0.utf8))) != nil })
    }

    /// Regular files the sample left in its writable directories (`places`: where each is mounted
    /// here, and its path in the jail): hashed, and kept under `<runDirectory>/written/<sha256>`
    /// (made for the first one).
    /// At most this many files the sample left are kept.
    static let writtenLimit = 100
    /// The largest file a sample wrote that is hashed and kept.
    static let writtenFileBytes: Int64 = 64 << 20

    private func collectWritten(_ places: [(mount: String, jailPath: String)], into runDirectory: String)
        -> (files: [SandboxReport.WrittenFile], truncated: Bool)
    {
        let keep = runDirectory + "/written"
        var out: [SandboxReport.WrittenFile] = []
        var truncated = false
        var keeping = false
        let digest = DescriptorDigest()
        // By bytes: a name need not be UTF-8 (a decoded one would name no file, and the file
        // would be lost as evidence).
        func walk(_ directory: PathBytes, depth: Int, _ place: (mount: String, jailPath: String)) {
            guard depth < 16, let fd = try? sys_open(directory.bytes, flags: O_RDONLY | O_DIRECTORY),
                let entries = try? sys_readDirectory(fd)
            else { return }
            sys_close(fd)
            for (entryName, _) in entries {
                let path = directory.appending(entryName)
                guard let status = try? sys_lstat(path.bytes) else { continue }
                if status.isDirectory {
                    walk(path, depth: depth + 1, place)
                } else if status.isRegularFile {
                    guard out.count < Self.writtenLimit else {
                        truncated = true
                        return
                    }
                    guard let file = try? sys_open(path.bytes, flags: O_RDONLY) else { continue }
                    defer { sys_close(file) }
                    // Whatever the sample wrote is hostile too: at most `writtenFileBytes` of it.
                    guard
                        let sha = (try? digest.sha256(of: file, limit: .bytes(Self.writtenFileBytes, seconds: 10)))?
                            .sha256
                    else { continue }
                    if !keeping {
                        try? sys_mkdir(Array(runDirectory.utf8), permissions: 0o700)
                        try? sys_mkdir(Array(keep.utf8), permissions: 0o700)
                        keeping = true
                    }
                    let kept = keep + "/" + sha
                    if let out = try? sys_create(Array(kept.utf8), flags: O_WRONLY, permissions: 0o400) {
                        let copy = try? digest.copy(
                            from: file, to: out, limit: .bytes(Self.writtenFileBytes, seconds: 10))
                        sys_close(out)
                        if copy?.sha256 != sha { try? sys_unlink(Array(kept.utf8)) }
                    }
                    let inJail = PathBytes(Array(place.jailPath.utf8) + path.bytes.dropFirst(place.mount.utf8.count))
                    out.append(
                        .init(
                            path: inJail.jsonText, pathBase64: inJail.isValidUTF8 ? nil : inJail.base64,
                            size: status.size, sha256: sha, evidencePath: kept))
                }
            }
        }
        for place in places { walk(PathBytes(place.mount), depth: 0, place) }
        return (out, truncated)
    }

    private func wrap<T>(_ body: () throws(SystemCallError) -> T) throws -> T {
        do {
            return try body()
        } catch {
            throw RunError(description: "sandbox preparation: \(error)")
        }
    }
}
