// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Dispatch
@preconcurrency import Glibc
import Synchronization
import SystemPackage
import WardenCore
import WardenLinux

/// Answers the sandbox's seccomp user notifications on its own thread: reads each call's
/// arguments from the sample's memory, answers, and records the call only when that answer shows
/// the notification was still valid (the process may have died meanwhile, and its pid been
/// reused). The answer is CONTINUE, but for IPv4 and IPv6 sockets and the addresses given to
/// them, which it answers itself as a host with no network would (`SandboxNetworkAnswer`): no
/// socket of those families is ever made, and the kernel never acts on an address it read. What
/// the sample may not do at all, the filter refuses by itself.
final class SandboxObserver: @unchecked Sendable {
    // Written by the observer thread only; read after it has finished (`join`).
    private(set) var syscalls: [String: Int] = [:]
    private(set) var network: [SandboxReport.NetworkAttempt] = []
    private(set) var files: [SandboxReport.FileAccess] = []
    private(set) var processes: [SandboxReport.Process] = []
    private(set) var signals: [String] = []
    /// DNS questions sent to a name server directly (`DNSQuestion`).
    private(set) var lookups: [SandboxReport.NameLookup] = []
    /// Observed calls made through the second ABI of `architectures` (i386's).
    private(set) var compatibleCalls = 0
    /// IPv4 and IPv6 socket calls the observer refused (a raw socket, say), as the filter
    /// refuses other families.
    var refusedSockets = 0
    private static let eventLimit = 2000
    /// The ABIs whose calls are notified, by the AUDIT_ARCH_* value notifications carry: the
    /// native one, and on x86_64 i386's (`SandboxFilter.compatibleArchitecture`). The filter's
    /// arch check kills calls of any other.
    private static let architectures =
        [SeccompArchitecture.native] + (SandboxFilter.compatibleArchitecture.map { [$0] } ?? [])
    /// Calls seen and what to read for each, by ABI and syscall number (`slot`): arrays, not
    /// dictionaries, since the sample waits while the observer looks them up (the numbers of
    /// both ABIs are far below `tableSize`).
    private static let tableSize = 1024
    private var counts = [Int](repeating: 0, count: tableSize * architectures.count)
    /// Worked out at a number's first notification (libseccomp's name lookup allocates).
    private var plans = [ArgumentPlan?](repeating: nil, count: tableSize * architectures.count)
    /// What was read while each call waited, described when the run is over: the sample waits
    /// while the observer works, on the same CPU, so the notification path does only the reads.
    private var captured: [Captured] = []
    /// Bytes of argument vectors kept so far, and the most a run keeps: a sample that execs in a
    /// loop with 64 arguments of 1 KiB each would otherwise have the supervisor hold 64 KiB for
    /// each of the 8,000 calls it keeps (512 MiB). Past the budget, execs keep their path only.
    private var argumentBytes = 0
    static let argumentBudget = 1 << 20
    /// Whether the sample's own exec was seen: the first exec of a run is the launcher's
    /// `execveat(sample, "", AT_EMPTY_PATH)`; any later exec through a descriptor is the
    /// sample's (fexecve of a memfd, the fileless kind).
    private var sampleExecSeen = false

    /// One notified call: its arguments and the memory they point at (up to two strings or
    /// structures), read while the call was waiting for its answer.
    struct Captured {
        var nr: Int32
        /// Which of `architectures` the call was made in (0: the native ABI).
        var abi = 0
        /// Set when the run is over, from `nr`.
        var name = ""
        var pid: Int32
        var args: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
        var first: [UInt8]?
        var second: [UInt8]?
        /// An exec's argument vector, and whether it was read to its end.
        var arguments: (strings: [[UInt8]], complete: Bool)?
        /// `first` as the sample passed it, when it was relative to the working directory and
        /// `first` is now the absolute path (`workingDirectory`).
        var firstAsPassed: [UInt8]?
        /// The directory descriptor `first` is relative to, when it was left as passed.
        var directoryDescriptor: Int32?
        /// An exec through a descriptor (execveat with an empty path): whether it is the
        /// launcher's exec of the sample, and otherwise what the descriptor named
        /// (`/memfd:stage2 (deleted)`), read while the call waited.
        var isSampleExec = false
        var descriptorTarget: [UInt8]?
        /// What the observer answered, when it answered the call itself (`SandboxNetworkAnswer`).
        var result: String?
        /// The sink's connection a connect was made to (`SandboxConnectionSink`).
        var connection: Int?
        /// The call an i386 socketcall made (`connect`, `bind`, `sendto`), its arguments in `args`.
        var multiplexed: String?
        /// A sendmsg's address length, and its first buffer's length.
        var addressLength: UInt64?
        var payloadLength: UInt64?
        /// When the observer answered (CLOCK_MONOTONIC ns): the call's exit comes after it.
        var answeredAt: Int64 = 0
        /// A DNS query's sendto that the observer delivered to the jail's name server (which
        /// records its question).
        var delivered = false

        /// A getsockname, getpeername, setsockopt, getsockopt or recvfrom: a call answered for a
        /// stand-in (`SandboxStandIn`), only counted.
        var isStandInQuery: Bool {
            switch multiplexed ?? name {
            case "getsockname", "getpeername", "setsockopt", "getsockopt", "recvfrom": true
            default: false
            }
        }
    }

    /// Which arguments of a call point at something worth reading.
    enum ArgumentPlan {
        /// Not described at all (only counted).
        case countOnly
        /// Described from the registers alone.
        case registers
        /// A path in argument `index`; for an open, its flags in argument `openFlags` (nil: a
        /// call that changes the file it names).
        case path(Int, openFlags: Int?)
        /// Two paths (rename).
        case paths(Int, Int)
        /// A descriptor in argument `index`, named by what it refers to (fchmod).
        case descriptor(Int)
        /// A program's path and its argument vector (execve, execveat).
        case exec(path: Int, arguments: Int)
        /// A path, then a `struct open_how` (openat2).
        case pathAndOpenHow(Int, Int)
        /// A `struct sockaddr` and its length (connect, sendto, bind), answered by the observer
        /// when it holds an IPv4 or IPv6 address (`SandboxNetworkAnswer`).
        case socketAddress(address: Int, length: Int, call: SandboxNetworkAnswer.AddressCall)
        /// socket(2) for IPv4 or IPv6 (the only families the filter notifies): described from
        /// the registers, answered with a stand-in.
        case socket
        /// sendmsg's `struct msghdr` (sendmmsg's first), in argument `index`: the address it names
        /// (then answered as sendto's is) and its first buffer.
        case message(Int)
        /// i386's socketcall(2): its call (socket, connect, bind, sendto, and the stand-ins'
        /// queries: the filter notifies those) and that call's arguments, 4-byte words in
        /// memory, read with the address a connect, bind or sendto gives.
        case socketCall
        /// A name in argument `index` that is no path (prctl's process name, memfd_create's).
        case name(Int)
        /// A symlink's target (its text, as it is stored) and the path it is made at, whose
        /// directory descriptor, if any, is the argument before it.
        case symlink(target: Int, path: Int)
        /// getsockname or getpeername (`peer`): answered for a stand-in (`SandboxStandIn`),
        /// only counted.
        case socketName(peer: Bool)
        /// setsockopt (`set`) or getsockopt at an IP level (and getsockopt's SO_DOMAIN and
        /// SO_PROTOCOL): answered for a stand-in, only counted.
        case socketOption(set: Bool)
        /// recvfrom with an address to fill in: answered for a datagram stand-in whose other end
        /// is the name server, only counted.
        case receiveFrom
        /// listen(2): described with the address of the stand-in it is made on.
        case listen

        init(_ name: String) {
            switch name {
            case "execve": self = .exec(path: 0, arguments: 1)
            case "execveat": self = .exec(path: 1, arguments: 2)
            case "open": self = .path(0, openFlags: 1)
            case "creat", "unlink", "chmod", "mkdir": self = .path(0, openFlags: nil)
            case "openat": self = .path(1, openFlags: 2)
            case "unlinkat", "fchmodat", "mkdirat": self = .path(1, openFlags: nil)
            case "openat2": self = .pathAndOpenHow(1, 2)
            case "rename", "link": self = .paths(0, 1)
            case "renameat", "renameat2", "linkat": self = .paths(1, 3)
            case "symlink": self = .symlink(target: 0, path: 1)
            case "symlinkat": self = .symlink(target: 0, path: 2)
            case "connect": self = .socketAddress(address: 1, length: 2, call: .connect)
            case "sendto": self = .socketAddress(address: 4, length: 5, call: .sendto)
            case "bind": self = .socketAddress(address: 1, length: 2, call: .bind)
            case "sendmsg", "sendmmsg": self = .message(1)
            case "socket": self = .socket
            case "socketcall": self = .socketCall
            case "getsockname": self = .socketName(peer: false)
            case "getpeername": self = .socketName(peer: true)
            case "setsockopt": self = .socketOption(set: true)
            case "getsockopt": self = .socketOption(set: false)
            case "recvfrom": self = .receiveFrom
            case "listen": self = .listen
            case "fchmod": self = .descriptor(0)
            case "clone", "fork", "vfork", "kill", "tkill", "tgkill": self = .registers
            case "memfd_create": self = .name(0)
            case "prctl": self = .name(1)
            default: self = .countOnly
            }
        }
    }

    /// Pays the notification path's first-use costs before the sample runs: the plans of the
    /// calls the filter notifies (libseccomp's name lookup), the type metadata of what a
    /// notification builds, and the memory reads, done once on this process's own memory: paid
    /// at the first notification instead, they would hold the sample's own exec.
    func prepare() {
        for (abi, architecture) in Self.architectures.enumerated() {
            for name in SandboxFilter.notified {
                guard let number = architecture.number(of: name), Int(number) < Self.tableSize else {
                    continue
                }
                plans[abi * Self.tableSize + Int(number)] = ArgumentPlan(name)
            }
        }
        captured.reserveCapacity(1024)
        let path = strdup("/sample")
        defer { free(path) }
        var argv: [UnsafeMutablePointer<CChar>?] = [path, nil]
        argv.withUnsafeMutableBufferPointer { vector in
            let address = { (pointer: UnsafeRawPointer?) in UInt64(UInt(bitPattern: pointer)) }
            let call = capture(
                .exec(path: 0, arguments: 1), nr: 0, pid: getpid(),
                args: (address(path), address(vector.baseAddress), 0, 0, 0, 0))
            if let call { captured.append(call) }
        }
        captured.removeAll(keepingCapacity: true)
        argumentBytes = 0
    }

    /// Serves `listener` until every sandboxed process is gone, then describes what it saw.
    func serve(_ descriptor: FileDescriptor) {
        if let listener = try? SeccompListener(descriptor) { receive(listener) }
        exitTrace?.trace.drain()
        describeCaptured()
        // For the next run (also one made but never taken: the sample never got to its exec).
        if let holder = exitTrace ?? preparedTrace.withLock({ $0.trace }) { SandboxExitTraces.give(holder) }
    }

    // What the kernel returned for the calls the observer let through (`SandboxCallResults`).

    /// Whether to trace the results at all.
    var traceResults = true
    /// Tracing the jail's processes from the sample's own exec on; nil before, or where the
    /// trace cannot be made (the report then gives no results for those calls).
    private var exitTrace: SandboxExitTraces.Holder?
    private var notifiedSinceDrain = 0
    /// Each thread's first answer after `captured` was full: where the window of its last
    /// captured call ends.
    private var answersPastTheLimit: [Int32: Int64] = [:]
    /// The i386 stand-in queries answered (through socketcall, whose exits are traced), by
    /// thread: each ends its thread's last call's window, as a captured call does.
    private var queryAnswers: [(tid: Int32, answeredAt: Int64)] = []
    /// Why the trace could not be made, for the report (nil: it was, or it was not asked for).
    private(set) var exitTraceError: String?
    /// The calls whose exits are traced: those the filter always notifies, by the numbers of
    /// each ABI (`architectures`), and i386's socketcall (a unix socket's connect through it
    /// goes on to the kernel).
    private static let tracedCalls: [[Int32]] = architectures.map { architecture in
        (SandboxFilter.observed + ["socketcall"]).compactMap { architecture.number(of: $0) }
    }

    /// The numbers of the two exec calls in each ABI: an exec that succeeded exits as the execve
    /// of the program's ABI.
    private static let execve = architectures.map { $0.number(of: "execve") ?? -1 }
    private static let execveat = architectures.map { $0.number(of: "execveat") ?? -1 }

    /// A call's number as the trace gives it: with `compatibleABI` added for an i386 call.
    private static func tracedNumber(_ nr: Int32, abi: Int) -> Int64 {
        Int64(nr) + (abi == 0 ? 0 : SyscallExitTrace.compatibleABI)
    }

    /// Signalled once `prepareExitTrace` is done: the observer waits for it before it answers
    /// the sample's own exec, so no call of the sample comes before the trace.
    private let exitTraceReady = DispatchSemaphore(value: 0)
    private var exitTracePrepared = false
    /// What `prepareExitTrace` made, handed over under a lock: the observer may have stopped
    /// waiting (`abandoned`), and then what comes later is let go.
    private let preparedTrace = Mutex<PreparedTrace>(PreparedTrace())
    private struct PreparedTrace: @unchecked Sendable {
        var trace: SandboxExitTraces.Holder?
        var error: String?
        var abandoned = false
    }

    /// Starts tracing the jail's processes (`pid`, the jail's init: its pid namespace), on the
    /// thread that spawned the jail, while the jail is being set up: loading and attaching the
    /// program takes about 0.6 ms, which the sample's own exec then does not wait for. Called
    /// once per run, and only when the run is observed with `traceResults`.
    /// Loads a trace for the next run, on the calling thread (`SandboxExitTraces.preload`).
    static func preloadExitTrace() {
        guard SyscallExitTrace.isSupported, SyscallExitTrace.threadIDsAreOurs else { return }
        SandboxExitTraces.preload(
            calls: tracedCalls[0], compatibleCalls: tracedCalls.count > 1 ? tracedCalls[1] : [], limit: 8 * eventLimit)
    }

    func prepareExitTrace(_ pid: Int32) {
        defer { exitTraceReady.signal() }
        var made = PreparedTrace()
        if !SyscallExitTrace.threadIDsAreOurs {
            // Its thread ids are the initial pid namespace's; the notifications' are this process's.
            made.error = "the supervisor runs in a pid namespace of its own, whose thread ids the trace does not give"
        } else {
            do {
                // Twice what `captured` holds: each captured call leaves at most one exit.
                let holder = try SandboxExitTraces.take(
                    calls: Self.tracedCalls[0], compatibleCalls: Self.tracedCalls.count > 1 ? Self.tracedCalls[1] : [],
                    limit: 8 * Self.eventLimit)
                do {
                    try holder.trace.follow(pidNamespaceOf: pid)
                    made.trace = holder
                } catch {
                    SandboxExitTraces.give(holder)
                    throw error
                }
            } catch {
                made.error = "\(error)"
            }
        }
        let late = preparedTrace.withLock { state -> SandboxExitTraces.Holder? in
            guard !state.abandoned else { return made.trace }
            state = made
            return nil
        }
        if let late { SandboxExitTraces.give(late) }
    }

    private func receive(_ listener: SeccompListener) {
        // Each notification blocks the sample until answered: hand over on one CPU (Linux 6.6+).
        // The same kernels wait inside RECV on the queue poll uses, and wake it with ENOENT when
        // the last sandboxed process is gone: RECV alone then, a syscall and a wait-queue round
        // fewer per notification. Older kernels wait in RECV on a semaphore nothing releases at
        // the end, so there a poll comes first.
        let receiveWaits = listener.requestSynchronousWakeUps()
        while true {
            if !receiveWaits {
                var fds = [pollfd(fd: listener.descriptor.rawValue, events: Int16(POLLIN), revents: 0)]
                guard (try? sys_poll(&fds, timeout: 1000)) != nil else { return }
                if fds[0].revents & Int16(POLLIN) == 0 {
                    if fds[0].revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 { return }
                    continue
                }
            }
            let notification: SeccompNotification
            do {
                notification = try listener.receive()
            } catch {
                // ENOENT: the caller died, or (waiting in RECV) the last process left.
                if error.errno == .noSuchFileOrDirectory && receiveWaits && listener.isHungUp { return }
                if error.errno == .noSuchFileOrDirectory || error.errno == .interrupted { continue }
                return
            }
            let abi =
                notification.architecture == Self.architectures[0].token
                ? 0 : Self.architectures.firstIndex { $0.token == notification.architecture }
            guard let abi, notification.number >= 0 && Int(notification.number) < Self.tableSize else {
                // Of no ABI the filter lets through (it kills those): answer, never describe.
                _ = listener.proceed(notification.id)
                continue
            }
            let nr = Int(notification.number)
            let slot = abi * Self.tableSize + nr
            let plan: ArgumentPlan
            if let known = plans[slot] {
                plan = known
            } else {
                plan = ArgumentPlan(SandboxFilter.name(of: Int32(nr), architecture: Self.architectures[abi]))
                plans[slot] = plan
            }
            let pid = notification.pid
            var call = capture(
                plan, nr: Int32(nr), pid: pid, args: notification.arguments, pointerSize: abi == 0 ? 8 : 4)
            call?.abi = abi
            if call?.isSampleExec == true && traceResults && !exitTracePrepared {
                // Ready long before, as a rule (the jail's set-up takes longer); a run whose
                // spawning thread never got to it goes on without results.
                exitTracePrepared = true
                let timedOut = exitTraceReady.wait(timeout: .now() + .seconds(2)) == .timedOut
                let prepared = preparedTrace.withLock { state -> PreparedTrace in
                    if timedOut && state.trace == nil && state.error == nil { state.abandoned = true }
                    return state
                }
                exitTrace = prepared.trace
                exitTraceError = prepared.abandoned ? "the trace was not ready in time" : prepared.error
            }
            call?.answeredAt = sys_monotonicNanoseconds()
            // The answer is also the id check: it fails (ENOENT) when the call is no longer
            // waiting (the process died, and its pid may since name another process), so what
            // was read before it counts only when it succeeds. A separate ID_VALID ioctl said
            // the same thing one syscall earlier.
            switch plan {
            case .socket, .socketAddress, .socketCall, .message, .socketName, .socketOption, .receiveFrom, .listen:
                guard answerNetworkCall(plan, &call, id: notification.id, pid: pid, on: listener) else {
                    continue
                }
                // A stand-in's query is only counted; an i386 one (through socketcall, traced)
                // still ends its thread's last call's window for an exit.
                if let query = call, query.isStandInQuery {
                    if query.multiplexed != nil, queryAnswers.count < 4096 {
                        queryAnswers.append((query.pid, query.answeredAt))
                    }
                    call = nil
                }
            default:
                guard listener.proceed(notification.id) else { continue }
            }
            counts[slot] += 1
            if let call {
                if captured.count < 4 * Self.eventLimit {
                    captured.append(call)
                } else if answersPastTheLimit.count < 4096, answersPastTheLimit[call.pid] == nil {
                    answersPastTheLimit[call.pid] = call.answeredAt
                }
            }
            // Each notified call leaves at most one exit in the ring buffer: drained long before
            // it fills (256 KiB hold about 6,500).
            notifiedSinceDrain += 1
            if notifiedSinceDrain == 512 {
                notifiedSinceDrain = 0
                exitTrace?.trace.drain()
            }
        }
    }

    // The network calls' state (SandboxObserver+Network.swift), the observer thread's as all else.

    /// The run's name server, which takes the other end of datagram stand-ins (nil: none).
    var nameServer: SandboxNameService?
    /// The inodes of the datagram stand-ins whose other end the name server holds.
    var datagramStandIns: Set<UInt64> = []
    /// The run's sink, which takes the other end of TCP connections to outside addresses
    /// (nil: such connects fail as unreachable).
    var sink: SandboxConnectionSink?
    /// The stand-ins by inode (and the sockets connected to the sink in their place): what
    /// their queries are answered from (`SandboxStandIn`).
    var standIns: [UInt64: SandboxStandIn] = [:]
    /// The inodes of the sockets connected to the sink.
    var sinkConnections: Set<UInt64> = []
    /// The port the next stand-in that needs one gets (`takeEphemeralPort`).
    var nextEphemeralPort = 41_537
    /// The id of the sink's next connection.
    var nextConnection = 0
    /// Where each sink connection's connect is in `network`, by connection id.
    private(set) var connectionEvents: [Int: Int] = [:]

    /// Whether this thread has joined the jail's network namespace, where stand-ins are made.
    var inJailNetwork = false

    /// Argument `index` of a call, without building an array per call.
    static func register(_ index: Int, of args: SeccompArguments) -> UInt64 {
        switch index {
        case 0: args.0
        case 1: args.1
        case 2: args.2
        case 3: args.3
        case 4: args.4
        default: args.5
        }
    }

    /// Reads what the arguments in `plan` point at; nil for calls only counted.
    /// `pointerSize`: of the caller's ABI (4 for i386), for the pointers in an argument vector.
    private func capture(
        _ plan: ArgumentPlan, nr: Int32, pid: Int32, args: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64),
        pointerSize: Int = 8
    )
        -> Captured?
    {
        func values(_ index: Int) -> UInt64 { Self.register(index, of: args) }
        func string(_ index: Int) -> [UInt8]? { sys_readProcessString(pid, address: values(index)) }
        // What descriptor `fd` of the caller names (`/memfd:stage2 (deleted)`, `/tmp/stage3`).
        func target(ofDescriptor fd: Int32) -> [UInt8]? {
            (try? sys_readlink(Array("/proc/\(pid)/fd/\(fd)".utf8))).map(inJail)
        }
        // A relative path against the working directory (AT_FDCWD, or a call without a
        // directory descriptor: its path is argument 0) is made absolute with the directory the
        // process is in while the call waits (`cd /etc; cat shadow`). One against another
        // descriptor is made absolute with what that descriptor names only when the call writes
        // or the path may name a sensitive file (`openat(etc, "shadow")`): `find` opens almost
        // every file so, and a readlink for each would cost more than the rest of the call's
        // notification. Either directory is the kernel's name for it, with no symlinks, so a
        // leading `..` is exact.
        var cwd: [UInt8]??
        func absolute(_ path: [UInt8]?, at index: Int, writes: Bool) -> [UInt8]? {
            guard let path, let first = path.first, first != UInt8(ascii: "/") else { return nil }
            let directoryFD = index > 0 ? Int32(truncatingIfNeeded: values(index - 1)) : AT_FDCWD
            let directory: [UInt8]?
            if directoryFD == AT_FDCWD {
                if cwd == nil { cwd = try? sys_readlink(Array("/proc/\(pid)/cwd".utf8)) }
                directory = cwd ?? nil
            } else {
                guard writes || SensitivePath.mayBeNamedBy(relativePath: path) else { return nil }
                directory = target(ofDescriptor: directoryFD)
            }
            guard let directory, directory.first == UInt8(ascii: "/"),
                !directory.suffix(Self.deletedSuffix.count).elementsEqual(Self.deletedSuffix)
            else { return nil }
            return Self.join(directory, path)
        }
        func path(_ index: Int, writes: Bool = true) -> [UInt8]? {
            let passed = string(index)
            guard let resolved = absolute(passed, at: index, writes: writes) else {
                // Left relative to a directory descriptor: the report says to which.
                if let passed, passed.first != UInt8(ascii: "/"), index > 0,
                    Int32(truncatingIfNeeded: values(index - 1)) != AT_FDCWD
                {
                    call.directoryDescriptor = Int32(truncatingIfNeeded: values(index - 1))
                }
                return passed
            }
            call.firstAsPassed = passed
            return resolved
        }
        func opensToWrite(_ flags: UInt64) -> Bool {
            Int32(truncatingIfNeeded: flags) & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC) != 0
        }
        var call = Captured(nr: nr, pid: pid, args: args)
        switch plan {
        case .countOnly: return nil
        case .registers: break
        case .descriptor(let index):
            call.descriptorTarget = target(ofDescriptor: Int32(truncatingIfNeeded: values(index)))
        case .path(let index, let openFlags):
            call.first = path(index, writes: openFlags.map { opensToWrite(values($0)) } ?? true)
        case .exec(let index, let arguments):
            call.first = path(index)
            // A path through a descriptor (`/proc/self/fd/3`, `/dev/fd/3`): the memfd trick by path.
            if let passed = call.first, let fd = Self.descriptorNumber(inPath: passed) {
                call.descriptorTarget = target(ofDescriptor: fd)
            }
            // Its own program again (`/proc/self/exe`): busybox's applets, a dropper that
            // re-executes itself under another argv[0].
            if let passed = call.first, Self.ownProgramPaths.contains(where: { $0 == passed }) {
                call.descriptorTarget = (try? sys_readlink(Array("/proc/\(pid)/exe".utf8))).map(inJail)
            }
            // execveat (path in argument 1) with an empty path runs its descriptor (argument 0).
            if index == 1, call.first?.isEmpty == true {
                if !sampleExecSeen {
                    sampleExecSeen = true
                    call.isSampleExec = true
                } else {
                    call.descriptorTarget = target(ofDescriptor: Int32(truncatingIfNeeded: values(0)))
                }
            }
            if argumentBytes < Self.argumentBudget,
                let vector = sys_readProcessStringArray(pid, address: values(arguments), pointerSize: pointerSize)
            {
                argumentBytes += vector.strings.reduce(0) { $0 + $1.count }
                call.arguments = vector
            }
        case .paths(let first, let second):
            call.first = path(first)
            // rename(old, new) has no descriptors; renameat's new path has its own (argument 2).
            let target = string(second)
            call.second = absolute(target, at: first == 0 ? 0 : second, writes: true) ?? target
        case .pathAndOpenHow(let index, let how):
            // struct open_how {flags, mode, resolve}; open_how.flags: the first 8 bytes, little-endian.
            call.second = sys_readProcessMemory(pid, address: values(how), length: 16)
            let flags = call.second.map { bytes in
                bytes.prefix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            }
            call.first = path(index, writes: flags.map(opensToWrite) ?? true)
        case .symlink(let target, let index):
            call.second = string(target)
            // symlink(2) has no directory descriptor: its path is against the working directory.
            if index == 1 {
                let passed = string(index)
                call.first = absolute(passed, at: 0, writes: true) ?? passed
                if call.first != passed { call.firstAsPassed = passed }
            } else {
                call.first = path(index)
            }
        case .name(let index):
            // Both names are short (16 bytes for a process, 249 for a memfd).
            call.first = sys_readProcessString(pid, address: values(index), limit: 256)
        case .socket, .socketName, .socketOption, .receiveFrom, .listen: break
        case .socketCall:
            // (call, its arguments): socket takes (domain, type, protocol), connect and bind
            // (fd, address, length), sendto (fd, buffer, length, flags, address, length). The
            // words become the call's arguments. A socket call whose words cannot be read is
            // kept as it is, to be refused: the kernel must not read them instead.
            let subcall = values(0)
            let (name, count): (String, Int)
            switch subcall {
            case 1: (name, count) = ("socket", 3)
            case 2: (name, count) = ("bind", 3)
            case 3: (name, count) = ("connect", 3)
            case 4: (name, count) = ("listen", 2)
            case 6: (name, count) = ("getsockname", 3)
            case 7: (name, count) = ("getpeername", 3)
            case 11: (name, count) = ("sendto", 6)
            case 14: (name, count) = ("setsockopt", 5)
            case 15: (name, count) = ("getsockopt", 5)
            default: return nil
            }
            guard let raw = sys_readProcessMemory(pid, address: values(1) & 0xffff_ffff, length: 4 * count),
                raw.count == 4 * count
            else { return subcall == 1 ? call : nil }
            let words = (0..<6).map { index in
                index < count
                    ? UInt64(raw.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4 * index, as: UInt32.self) }) : 0
            }
            call.multiplexed = name
            call.args = (words[0], words[1], words[2], words[3], words[4], words[5])
            guard [2, 3, 11].contains(subcall) else { break }
            let (address, length) = count == 6 ? (words[4], words[5]) : (words[1], words[2])
            if address != 0 {
                call.first = sys_readProcessMemory(pid, address: address, length: Int(min(length, 128)))
            }
        case .message(let index):
            // struct msghdr {name, namelen, iov, iovlen, …}: pointers of the caller's ABI, the
            // length a 4-byte int (padded to a pointer's size), then an iovec {base, len}.
            let header = sys_readProcessMemory(pid, address: values(index), length: 4 * pointerSize) ?? []
            func word(_ bytes: [UInt8], _ slot: Int) -> UInt64 {
                guard bytes.count >= (slot + 1) * pointerSize else { return 0 }
                return bytes.withUnsafeBytes {
                    pointerSize == 8
                        ? $0.loadUnaligned(fromByteOffset: slot * 8, as: UInt64.self)
                        : UInt64($0.loadUnaligned(fromByteOffset: slot * 4, as: UInt32.self))
                }
            }
            let (name, nameLength) = (word(header, 0), word(header, 1) & 0xffff_ffff)
            guard name != 0 else { break }
            call.first = sys_readProcessMemory(pid, address: name, length: Int(min(nameLength, 128)))
            call.addressLength = nameLength
            // Its first buffer, when the address is an IPv4 or IPv6 one (never delivered).
            if let sockaddr = call.first,
                case .some(.some) = SandboxNetworkAnswer.address(in: sockaddr, length: nameLength),
                word(header, 3) > 0,
                let vector = sys_readProcessMemory(pid, address: word(header, 2), length: 2 * pointerSize)
            {
                call.payloadLength = word(vector, 1)
                if word(vector, 1) > 0 {
                    call.second = sys_readProcessMemory(
                        pid, address: word(vector, 0), length: Int(min(word(vector, 1), UInt64(DNSQuestion.readLimit))))
                }
            }
        case .socketAddress(let address, let length, let kind):
            if values(address) != 0 {
                call.first = sys_readProcessMemory(pid, address: values(address), length: Int(min(values(length), 128)))
            }
            // A datagram to an IPv4 or IPv6 address, which is never delivered: what it carried is
            // on record (a UDP C2's message, a flood's packet), and when it went to a name
            // server's port, its question is a host name looked up without glibc (which asks the
            // jail's nscd socket instead).
            if kind == .sendto, let sockaddr = call.first,
                case .some(.some) = SandboxNetworkAnswer.address(in: sockaddr, length: values(length)), values(2) > 0
            {
                call.second = sys_readProcessMemory(
                    pid, address: values(1), length: Int(min(values(2), UInt64(DNSQuestion.readLimit))))
            }
        }
        return call
    }

    /// Where the jail's root is mounted in the supervisor's mount namespace (set before the run):
    /// a file the supervisor opened for the jail (the sample's copy, which it executes by its
    /// descriptor) is named from there by `/proc`, and is shown as the sample sees it.
    var jailRoot: [UInt8] = []

    /// `path` as the sample sees it: the jail root's prefix taken off.
    func inJail(_ path: [UInt8]) -> [UInt8] {
        guard !jailRoot.isEmpty, path.count > jailRoot.count, path.starts(with: jailRoot),
            path[jailRoot.count] == UInt8(ascii: "/")
        else { return path }
        return Array(path[jailRoot.count...])
    }

    /// clone(2)'s CLONE_THREAD flag.
    static let cloneThread: UInt64 = 0x10000

    /// The paths by which a process names its own program.
    /// (An array, not a set: a `Set<[UInt8]>`'s first use looked up its element's Hashable
    /// conformance by scanning the binary's records, 0.3 ms while the jail was set up.)
    static let ownProgramPaths: [[UInt8]] = [Array("/proc/self/exe".utf8), Array("/proc/thread-self/exe".utf8)]

    /// What the kernel appends to the name of a directory that was removed while open.
    static let deletedSuffix = Array(" (deleted)".utf8)

    /// N in `/proc/self/fd/N`, `/proc/thread-self/fd/N`, `/proc/<digits>/fd/N` or `/dev/fd/N`.
    static func descriptorNumber(inPath path: [UInt8]) -> Int32? {
        let parts = path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        func number(_ text: String) -> Int32? { text.allSatisfy(\.isASCII) ? Int32(text) : nil }
        switch parts.count {
        case 4 where parts[0] == "" && parts[1] == "dev" && parts[2] == "fd": return number(parts[3])
        case 5
        where parts[0] == "" && parts[1] == "proc" && parts[3] == "fd"
            && (parts[2] == "self" || parts[2] == "thread-self" || number(parts[2]) != nil):
            return number(parts[4])
        default: return nil
        }
    }

    /// `relative` against `directory` (an absolute path without symlinks: the kernel's name for
    /// a working directory). `.` components go; a leading `..` takes a component off
    /// `directory`, which is exact since it has no symlinks; a `..` after another component
    /// stays, since that component may be a symlink.
    static func join(_ directory: [UInt8], _ relative: [UInt8]) -> [UInt8] {
        let slash = UInt8(ascii: "/")
        var base = directory.split(separator: slash).map(Array.init)
        var rest = relative.split(separator: slash, omittingEmptySubsequences: true).map(Array.init)
        rest.removeAll { $0 == [UInt8(ascii: ".")] }
        while rest.first == Array("..".utf8) {
            rest.removeFirst()
            if !base.isEmpty { base.removeLast() }
        }
        let components = base + rest
        return components.isEmpty ? [slash] : components.flatMap { [slash] + $0 }
    }

    enum Event {
        case file(SandboxReport.FileAccess)
        case network(SandboxReport.NetworkAttempt)
        case process(SandboxReport.Process)
        case signal(String)
        case none
    }

    private func describeCaptured() {
        // By slot; a call's name is the same in both ABIs, and counted once under it.
        // (An array by slot: a dictionary of its own type cost a conformance lookup on the way
        // to the report.)
        var names = [String?](repeating: nil, count: counts.count)
        for (slot, count) in counts.enumerated() where count > 0 {
            let name = SandboxFilter.name(
                of: Int32(slot % Self.tableSize), architecture: Self.architectures[slot / Self.tableSize])
            names[slot] = name
            syscalls[name, default: 0] += count
            if slot >= Self.tableSize { compatibleCalls += count }
        }
        let results = callResults()
        for (index, var call) in captured.enumerated() {
            let slot = call.abi * Self.tableSize + Int(call.nr)
            call.name =
                call.multiplexed ?? names[slot]
                ?? SandboxFilter.name(of: call.nr, architecture: Self.architectures[call.abi])
            var event = Self.describe(call)
            if let result = results[index] {
                switch event {
                case .file(var access): access.result = result; event = .file(access)
                case .process(var process): process.result = result; event = .process(process)
                case .network(var attempt) where attempt.result == nil:
                    attempt.result = result; event = .network(attempt)
                case .signal(let text): event = .signal("\(text) -> \(result)")
                default: break
                }
            }
            if case .file(var access) = event {
                if let passed = call.firstAsPassed { access.passedAs = PathBytes(passed).displayString }
                // (A link's path is its new name, not `first`.)
                if !["link", "linkat"].contains(call.name) { access.directoryDescriptor = call.directoryDescriptor }
                // The exact bytes of a path that JSON cannot carry as text.
                let raw: [UInt8]? =
                    switch call.name {
                    case "fchmod": call.descriptorTarget
                    case "memfd_create": call.first.map { Array("/memfd:".utf8) + $0 }
                    case "link", "linkat": call.second
                    default: call.first
                    }
                if let raw, !PathBytes(raw).isValidUTF8 { access.pathBase64 = PathBytes(raw).base64 }
                event = .file(access)
            }
            switch event {
            case .file(let access) where files.count < Self.eventLimit: files.append(access)
            case .network(let attempt) where network.count < Self.eventLimit:
                if let connection = call.connection { connectionEvents[connection] = network.count }
                network.append(attempt)
                if ["sendto", "sendmsg", "sendmmsg"].contains(call.name), !call.delivered, let message = call.second,
                    let question = DNSQuestion(message: message),
                    lookups.count < SandboxNameService.lookupLimit
                {
                    lookups.append(.init(request: "DNS \(question.type)", name: question.name, pid: call.pid))
                }
            case .process(let process) where processes.count < Self.eventLimit: processes.append(process)
            case .signal(let text) where signals.count < Self.eventLimit: signals.append(text)
            default: break
            }
        }
        captured = []
    }

    /// What each captured call returned (`ok`, `EROFS`), where its exit was traced.
    private func callResults() -> [String?] {
        guard let exits = exitTrace?.trace.exits, !exits.isEmpty else {
            return Array(repeating: nil, count: captured.count)
        }
        var calls = captured.map { call in
            SandboxCallResults.Call(
                tid: call.pid, number: Self.tracedNumber(call.nr, abi: call.abi), answeredAt: call.answeredAt,
                numbersAfterExec: [Self.execve[call.abi], Self.execveat[call.abi]].contains(call.nr)
                    ? Self.execve.enumerated().map { Self.tracedNumber($0.element, abi: $0.offset) } : [])
        }
        let capturedCount = calls.count
        calls += answersPastTheLimit.map { .init(tid: $0.key, number: -1, answeredAt: $0.value) }
        calls += queryAnswers.map { .init(tid: $0.tid, number: -1, answeredAt: $0.answeredAt) }
        return SandboxCallResults.values(of: calls, in: exits).prefix(capturedCount).map { $0.map(ErrnoName.result) }
    }

    static func describe(_ call: Captured) -> Event {
        let (name, pid, args) = (call.name, call.pid, call.args)
        // Paths for people: bytes that are not UTF-8, and control bytes, as \xNN (the exact
        // bytes go in `pathBase64`, set by the caller).
        let first = call.first.map { PathBytes($0).displayString } ?? "?"
        let second = call.second.map { PathBytes($0).displayString } ?? "?"
        // Arguments go in as they were, or as much as could be read (nil when none could).
        let arguments = call.arguments.map { $0.strings.map { String(decoding: $0, as: UTF8.self) } }
        let argumentsComplete = call.arguments.map(\.complete) == false ? false : nil
        switch name {
        case "execve":
            // A path through a descriptor is reported as what the descriptor named.
            let target = call.descriptorTarget.map { String(decoding: $0, as: UTF8.self) }
            var process = SandboxReport.Process(
                syscall: name, path: target ?? first, pid: pid, arguments: arguments,
                argumentsComplete: argumentsComplete)
            if target != nil { process.passedAs = first }
            return .process(process)
        case "execveat":
            // By descriptor: the sample itself, or what the descriptor named (a memfd: fileless).
            let byDescriptor =
                call.isSampleExec
                ? SandboxReport.Process.theSample
                : call.descriptorTarget.map { String(decoding: $0, as: UTF8.self) }
                    ?? "(descriptor \(Int32(truncatingIfNeeded: args.0)))"
            return .process(
                .init(
                    syscall: name, path: first.isEmpty ? byDescriptor : first, pid: pid,
                    arguments: arguments, argumentsComplete: argumentsComplete))
        // A clone with CLONE_THREAD starts a thread of the same process (Go's runtime makes a
        // few at start): counted with the calls, no process.
        case "clone" where args.0 & Self.cloneThread != 0: return .none
        case "clone", "fork", "vfork": return .process(.init(syscall: name, path: nil, pid: pid))
        case "open", "creat":
            let flags = name == "creat" ? Int32(O_CREAT | O_WRONLY | O_TRUNC) : Int32(truncatingIfNeeded: args.1)
            let mode = name == "creat" ? args.1 : args.2
            return .file(
                .init(syscall: name, path: first, detail: openFlags(flags, mode: mode), created: flags & O_CREAT != 0))
        case "openat", "openat2":
            // openat2 passes struct open_how {flags, mode, resolve} by pointer.
            let field = { (offset: Int) -> UInt64 in
                guard let how = call.second, how.count >= offset + 8 else { return 0 }
                return how.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self) }
            }
            let flags = Int32(truncatingIfNeeded: name == "openat2" ? field(0) : args.2)
            let mode = name == "openat2" ? field(8) : args.3
            return .file(
                .init(syscall: name, path: first, detail: openFlags(flags, mode: mode), created: flags & O_CREAT != 0))
        case "unlink", "unlinkat": return .file(.init(syscall: name, path: first, detail: nil, created: false))
        // A directory: a hidden place to work in (`/tmp/.X11-unix/.x`), a persistence place.
        case "mkdir", "mkdirat":
            let mode = String(name == "mkdir" ? args.1 & 0o7777 : args.2 & 0o7777, radix: 8)
            return .file(.init(syscall: name, path: first, detail: "mode " + mode, created: false))
        // A new name for an existing file (the path is the new name), and a symlink made at a path.
        case "link", "linkat": return .file(.init(syscall: name, path: second, detail: "to \(first)", created: true))
        case "symlink", "symlinkat":
            return .file(.init(syscall: name, path: first, detail: "-> \(second)", created: true))
        case "rename", "renameat", "renameat2":
            return .file(.init(syscall: name, path: first, detail: "to \(second)", created: false))
        case "chmod": return .file(.init(syscall: name, path: first, detail: String(args.1, radix: 8), created: false))
        case "fchmodat":
            return .file(.init(syscall: name, path: first, detail: String(args.2, radix: 8), created: false))
        case "fchmod":
            // The file the descriptor named while the call waited (a dropper's write, then fchmod).
            let path = call.descriptorTarget.map { String(decoding: $0, as: UTF8.self) } ?? "fd \(args.0)"
            return .file(.init(syscall: name, path: path, detail: String(args.1, radix: 8), created: false))
        // A send on a connected socket names no address: its peer is the connect's, listed there.
        case "sendto" where args.4 == 0: return .none
        case "sendmsg" where call.first == nil, "sendmmsg" where call.first == nil: return .none
        // On a stand-in, with the address it listens on (`first`); on a unix socket, not described.
        case "listen" where call.first == nil: return .none
        case "listen":
            var attempt = socketAddress(call.first ?? [], syscall: name)
            attempt.result = call.result
            return .network(attempt)
        case "connect", "sendto", "bind", "sendmsg", "sendmmsg":
            guard let bytes = call.first else {
                return .network(.init(syscall: name, family: "unknown", address: nil, port: nil, result: call.result))
            }
            var attempt = socketAddress(bytes, syscall: name)
            attempt.result = call.result
            // A datagram's first bytes, as the sink keeps a connection's (sendto's length: args.2).
            if name != "connect" && name != "bind", let payload = call.second {
                attempt.sentBytes = Int(clamping: name == "sendto" ? args.2 : call.payloadLength ?? 0)
                attempt.sent = PathBytes(payload).displayString
                attempt.sentBase64 = PathBytes(payload).base64
            }
            return .network(attempt)
        case "socket":
            return .network(
                .init(
                    syscall: name, family: familyName(Int32(truncatingIfNeeded: args.0)), address: nil, port: nil,
                    type: socketTypeName(Int32(truncatingIfNeeded: args.1) & 0xf), result: call.result))
        case "prctl": return .process(.init(syscall: name, path: nil, pid: pid, renamedTo: first))
        // A file with no path on any mount: what a fileless dropper writes its next stage into.
        case "memfd_create":
            return .file(.init(syscall: name, path: "/memfd:" + first, detail: memfdFlags(args.1), created: true))
        case "kill", "tkill":
            return .signal("\(name)(\(Int32(truncatingIfNeeded: args.0)), \(args.1))")
        case "tgkill":
            return .signal(
                "tgkill(\(Int32(truncatingIfNeeded: args.0)), \(Int32(truncatingIfNeeded: args.1)), \(args.2))")
        default: return .none
        }
    }

    /// `O_WRONLY|O_CREAT|O_TRUNC mode 0755`: the mode only when the call creates.
    static func openFlags(_ flags: Int32, mode: UInt64 = 0) -> String {
        var parts = [flags & O_ACCMODE == O_WRONLY ? "O_WRONLY" : flags & O_ACCMODE == O_RDWR ? "O_RDWR" : "O_RDONLY"]
        for (bit, name) in [(O_CREAT, "O_CREAT"), (O_TRUNC, "O_TRUNC"), (O_APPEND, "O_APPEND"), (O_EXCL, "O_EXCL")]
        where flags & Int32(bit) != 0 {
            parts.append(name)
        }
        let text = parts.joined(separator: "|")
        guard flags & O_CREAT != 0 else { return text }
        let octal = String(mode & 0o7777, radix: 8)
        return text + " mode " + String(repeating: "0", count: max(0, 4 - octal.count)) + octal
    }

    /// memfd_create's flags by name (`MFD_CLOEXEC|MFD_ALLOW_SEALING`), nil when none.
    static func memfdFlags(_ flags: UInt64) -> String? {
        let names: [(UInt64, String)] = [
            (0x1, "MFD_CLOEXEC"), (0x2, "MFD_ALLOW_SEALING"), (0x4, "MFD_HUGETLB"), (0x8, "MFD_NOEXEC_SEAL"),
            (0x10, "MFD_EXEC"),
        ]
        let set = names.filter { flags & $0.0 != 0 }.map(\.1)
        return set.isEmpty ? nil : set.joined(separator: "|")
    }

    static func familyName(_ family: Int32) -> String {
        switch family {
        case AF_UNIX: "AF_UNIX"
        case AF_INET: "AF_INET"
        case AF_INET6: "AF_INET6"
        case AF_NETLINK: "AF_NETLINK"
        case AF_PACKET: "AF_PACKET"
        default: "family-\(family)"
        }
    }

    static func socketTypeName(_ type: Int32) -> String {
        let names = [
            1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM", 5: "SOCK_SEQPACKET", 6: "SOCK_DCCP",
        ]
        return names[Int(type)] ?? "type-\(type)"
    }

    /// An IPv6 address as RFC 5952 writes it: lowercase hex groups, the longest run of two or
    /// more zero groups (the first of equals) as `::`, and an IPv4-mapped address's last 32 bits
    /// in dotted form (`::ffff:192.0.2.1`).
    static func ipv6Text(_ bytes: [UInt8]) -> String {
        guard bytes.count == 16 else { return "?" }
        if bytes.prefix(10).allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
            return "::ffff:" + bytes[12...].map(String.init).joined(separator: ".")
        }
        let groups = stride(from: 0, to: 16, by: 2).map { Int(bytes[$0]) << 8 | Int(bytes[$0 + 1]) }
        var best = (start: -1, length: 0)
        var index = 0
        while index < 8 {
            guard groups[index] == 0 else {
                index += 1
                continue
            }
            var end = index
            while end < 8 && groups[end] == 0 { end += 1 }
            if end - index > best.length { best = (index, end - index) }
            index = end
        }
        let text = { (range: ArraySlice<Int>) in range.map { String($0, radix: 16) }.joined(separator: ":") }
        guard best.length >= 2 else { return text(groups[...]) }
        return text(groups[..<best.start]) + "::" + text(groups[(best.start + best.length)...])
    }

    /// A `struct sockaddr` as family, address and port.
    static func socketAddress(_ bytes: [UInt8], syscall: String) -> SandboxReport.NetworkAttempt {
        guard bytes.count >= 2 else { return .init(syscall: syscall, family: "unknown", address: nil, port: nil) }
        let family = Int32(UInt16(bytes[0]) | UInt16(bytes[1]) << 8)
        switch family {
        case AF_UNIX:
            let path = bytes.dropFirst(2)
            let abstract = path.first == 0
            let name = abstract ? path.dropFirst() : path.prefix { $0 != 0 }
            return .init(
                syscall: syscall, family: "AF_UNIX",
                address: (abstract ? "@" : "") + String(decoding: name.prefix { $0 != 0 || abstract }, as: UTF8.self),
                port: nil)
        case AF_INET where bytes.count >= 8:
            return .init(
                syscall: syscall, family: "AF_INET", address: bytes[4..<8].map(String.init).joined(separator: "."),
                port: Int(bytes[2]) << 8 | Int(bytes[3]))
        case AF_INET6 where bytes.count >= 24:
            return .init(
                syscall: syscall, family: "AF_INET6", address: ipv6Text(Array(bytes[8..<24])),
                port: Int(bytes[2]) << 8 | Int(bytes[3]))
        default:
            return .init(syscall: syscall, family: "family-\(family)", address: nil, port: nil)
        }
    }
}
