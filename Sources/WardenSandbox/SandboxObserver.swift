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
    private var plans = [SandboxArgumentPlan?](repeating: nil, count: tableSize * architectures.count)
    /// What was read while each call waited, described when the run is over: the sample waits
    /// while the observer works, on the same CPU, so the notification path does only the reads.
    private var captured: [SandboxCall] = []
    /// Bytes of argument vectors kept so far, and the most a run keeps: a sample that execs in a
    /// loop with 64 arguments of 1 KiB each would otherwise have the supervisor hold 64 KiB for
    /// each of the 8,000 calls it keeps (512 MiB). Past the budget, execs keep their path only.
    private var argumentBytes = 0
    static let argumentBudget = 1 << 20
    /// Whether the sample's own exec was seen: the first exec of a run is the launcher's
    /// `execveat(sample, "", AT_EMPTY_PATH)`; any later exec through a descriptor is the
    /// sample's (fexecve of a memfd, the fileless kind).
    private var sampleExecSeen = false

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
                plans[abi * Self.tableSize + Int(number)] = SandboxArgumentPlan(name)
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
            let plan: SandboxArgumentPlan
            if let known = plans[slot] {
                plan = known
            } else {
                plan = SandboxArgumentPlan(SandboxFilter.name(of: Int32(nr), architecture: Self.architectures[abi]))
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

    /// Reads what the arguments in `plan` point at; nil for calls only counted.
    /// `pointerSize`: of the caller's ABI (4 for i386), for the pointers in an argument vector.
    private func capture(
        _ plan: SandboxArgumentPlan, nr: Int32, pid: Int32, args: SeccompArguments,
        pointerSize: Int = 8
    )
        -> SandboxCall?
    {
        func values(_ index: Int) -> UInt64 { SandboxCall.register(index, of: args) }
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
            return SandboxCallDescriber.join(directory, path)
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
        var call = SandboxCall(nr: nr, pid: pid, args: args)
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
            if let passed = call.first, let fd = ProcessPath.descriptorNumber(inPath: passed) {
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

    /// The paths by which a process names its own program.
    /// (An array, not a set: a `Set<[UInt8]>`'s first use looked up its element's Hashable
    /// conformance by scanning the binary's records, 0.3 ms while the jail was set up.)
    static let ownProgramPaths: [[UInt8]] = [Array("/proc/self/exe".utf8), Array("/proc/thread-self/exe".utf8)]

    /// What the kernel appends to the name of a directory that was removed while open.
    static let deletedSuffix = Array(" (deleted)".utf8)

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
            var event = SandboxCallDescriber.describe(call)
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
}
