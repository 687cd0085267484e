// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

// The sandbox launcher: what the jail's namespaces, mounts, limits and filter are, handed to the
// C launcher (clone, then async-signal-safe system calls only until the sample's execveat).

import CWardenLinux
@preconcurrency import Glibc
import SystemPackage

/// Everything the launcher sets up for one run. The launcher clones an init into new pid, mount,
/// net, ipc, uts and cgroup namespaces that builds the jail (binds, pivot_root, /proc, hostname,
/// lo up, setsid) and forks the sample: rlimits, uid/gid with no capabilities, no_new_privs,
/// pdeathsig, the seccomp filter, execveat.
public struct SandboxSpawn {
    /// A host path bound read-only at the same path in the jail; a device node keeps its device.
    public struct Bind: Sendable {
        public var path: [UInt8]
        public var isDevice: Bool

        public init(path: [UInt8], isDevice: Bool) {
            self.path = path
            self.isDevice = isDevice
        }
    }

    /// One rlimit, its soft and hard values.
    public struct Limit: Sendable {
        public var soft: UInt64
        public var hard: UInt64

        public init(soft: UInt64, hard: UInt64) {
            self.soft = soft
            self.hard = hard
        }
    }

    /// The jail's root, a tmpfs with its /tmp already mounted in it.
    public var root: [UInt8]
    public var binds: [Bind]
    /// The sample, open read-only: executed with execveat(AT_EMPTY_PATH).
    public var sample: FileDescriptor
    public var arguments: [[UInt8]]
    public var environment: [[UInt8]]
    public var uid: UInt32
    public var gid: UInt32
    public var cpuSeconds: Limit
    public var addressSpaceBytes: Limit
    public var fileSizeBytes: Limit
    public var openFiles: Limit
    public var processes: Limit
    /// The seccomp BPF program (`struct sock_filter` records, 8 bytes each).
    public var filter: [UInt8]
    /// Where the sample's filter sends its user-notification listener (SCM_RIGHTS); nil: none.
    public var listenerSocket: FileDescriptor?
    public var standardOutput: FileDescriptor
    public var standardError: FileDescriptor
    /// Receives `SandboxSpawn.Status` records: a setup failure, or the sample's end.
    public var statusPipe: FileDescriptor
    public var hostname: [UInt8]
    /// Open `cgroup.procs` files the jail's first process writes itself into.
    public var cgroupProcs: [FileDescriptor]

    public init(
        root: [UInt8], binds: [Bind], sample: FileDescriptor, arguments: [[UInt8]], environment: [[UInt8]],
        uid: UInt32, gid: UInt32, cpuSeconds: Limit, addressSpaceBytes: Limit, fileSizeBytes: Limit, openFiles: Limit,
        processes: Limit, filter: [UInt8], listenerSocket: FileDescriptor?, standardOutput: FileDescriptor,
        standardError: FileDescriptor, statusPipe: FileDescriptor, hostname: [UInt8], cgroupProcs: [FileDescriptor]
    ) {
        self.root = root
        self.binds = binds
        self.sample = sample
        self.arguments = arguments
        self.environment = environment
        self.uid = uid
        self.gid = gid
        self.cpuSeconds = cpuSeconds
        self.addressSpaceBytes = addressSpaceBytes
        self.fileSizeBytes = fileSizeBytes
        self.openFiles = openFiles
        self.processes = processes
        self.filter = filter
        self.listenerSocket = listenerSocket
        self.standardOutput = standardOutput
        self.standardError = standardError
        self.statusPipe = statusPipe
        self.hostname = hostname
        self.cgroupProcs = cgroupProcs
    }

    /// The flags of the launcher's one sendmsg, of the listener, made after the filter is
    /// loaded: a filter that notifies sendmsg must let this one through, or it would wait for
    /// the listener it carries.
    public static let listenerSendFlags = UInt64(WARDEN_LAUNCHER_SENDMSG_FLAGS)

    /// One record of the status pipe.
    public struct Status: Sendable, Equatable {
        /// Nil: the sample ended; else the setup stage that failed.
        public var failedStage: String?
        public var errno: Int32
        /// How the sample ended (when `failedStage` is nil).
        public var exitCode: Int32?
        public var signal: Int32?

        /// The records in what was read from the status pipe (a torn record at the end is left out).
        public static func decode(_ bytes: [UInt8]) -> [Status] {
            let size = MemoryLayout<warden_sandbox_status>.size
            return stride(from: 0, to: bytes.count - size + 1, by: size).map { offset in
                let record = bytes[offset..<(offset + size)].withUnsafeBytes {
                    $0.loadUnaligned(as: warden_sandbox_status.self)
                }
                return Status(
                    failedStage: record.stage == 0 ? nil : stageName(record.stage), errno: record.error,
                    exitCode: record.stage == 0 && record.kind == 1 ? record.value : nil,
                    signal: record.stage == 0 && record.kind == 2 ? record.value : nil)
            }
        }

        /// The launcher's stages, in the order of its `SBX_*` numbers (launcher.c).
        static func stageName(_ stage: Int32) -> String {
            let names = [
                "", "private mounts", "root bind", "read-only binds", "/tmp", "pivot_root", "old root", "/proc",
                "hostname", "setsid", "fork", "stdio", "rlimits", "setgroups", "setresgid", "setresuid", "no_new_privs",
                "pdeathsig", "seccomp", "notify listener", "execveat", "read-only root", "cgroup",
            ]
            return stage > 0 && Int(stage) < names.count ? names[Int(stage)] : "stage \(stage)"
        }
    }
}

/// Spawns the jail's init as `spawn` describes; its pid (killing it kills the whole pid namespace).
public func sys_spawnSandbox(_ spawn: SandboxSpawn) throws(SystemCallError) -> Int32 {
    let strings = [spawn.root, spawn.hostname] + spawn.binds.map(\.path) + spawn.arguments + spawn.environment
    guard strings.allSatisfy({ !$0.contains(0) }), spawn.filter.count / 8 <= Int(UInt16.max) else {
        throw SystemCallError(syscall: "clone", errno: .invalidArgument)
    }
    // One NUL-terminated copy of each string, and the NULL-terminated arrays the C side takes,
    // alive until the launcher returns (the children have their own copies by then).
    let copies = strings.map { bytes -> UnsafeMutablePointer<CChar> in
        let copy = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
        copy.initialize(repeating: 0, count: bytes.count + 1)
        bytes.withUnsafeBytes { raw in
            if let base = raw.baseAddress { UnsafeMutableRawPointer(copy).copyMemory(from: base, byteCount: raw.count) }
        }
        return copy
    }
    defer { copies.forEach { $0.deallocate() } }
    func array(_ range: Range<Int>) -> UnsafeMutablePointer<UnsafePointer<CChar>?> {
        let out = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: range.count + 1)
        for (index, copy) in copies[range].enumerated() { (out + index).initialize(to: UnsafePointer(copy)) }
        (out + range.count).initialize(to: nil)
        return out
    }
    let bindsStart = 2
    let argumentsStart = bindsStart + spawn.binds.count
    let environmentStart = argumentsStart + spawn.arguments.count
    let bindSources = array(bindsStart..<argumentsStart)
    let argv = array(argumentsStart..<environmentStart)
    let envp = array(environmentStart..<copies.count)
    defer { [bindSources, argv, envp].forEach { $0.deallocate() } }
    let devices = spawn.binds.map { Int32($0.isDevice ? 1 : 0) }
    let cgroupProcs = spawn.cgroupProcs.map(\.rawValue)
    let limits = [spawn.cpuSeconds, spawn.addressSpaceBytes, spawn.fileSizeBytes, spawn.openFiles, spawn.processes]

    var spec = warden_sandbox_spec()
    spec.root = UnsafePointer(copies[0])
    spec.hostname = UnsafePointer(copies[1])
    spec.tmp = nil  // mounted at root/tmp already
    spec.bind_sources = UnsafePointer(bindSources)
    spec.bind_count = Int32(spawn.binds.count)
    spec.sample_fd = spawn.sample.rawValue
    spec.argv = UnsafePointer(argv)
    spec.envp = UnsafePointer(envp)
    spec.uid = spawn.uid
    spec.gid = spawn.gid
    withUnsafeMutableBytes(of: &spec.limits) { raw in
        let buffer = raw.bindMemory(to: rlimit.self)
        for (index, limit) in limits.enumerated() {
            buffer[index] = rlimit(rlim_cur: rlim_t(limit.soft), rlim_max: rlim_t(limit.hard))
        }
    }
    spec.filter_length = UInt16(spawn.filter.count / 8)
    spec.notify_socket = spawn.listenerSocket?.rawValue ?? -1
    spec.stdout_fd = spawn.standardOutput.rawValue
    spec.stderr_fd = spawn.standardError.rawValue
    spec.status_fd = spawn.statusPipe.rawValue
    spec.cgroup_count = Int32(cgroupProcs.count)
    let (pid, error) = spawn.filter.withUnsafeBytes { program in
        devices.withUnsafeBufferPointer { deviceFlags in
            cgroupProcs.withUnsafeBufferPointer { procs in
                spec.filter = program.baseAddress
                spec.bind_device = deviceFlags.baseAddress
                spec.cgroup_procs = procs.baseAddress
                let pid = warden_sandbox_spawn(&spec)
                return (pid, Glibc.errno)
            }
        }
    }
    guard pid > 0 else { throw SystemCallError(syscall: "clone", errno: Errno(rawValue: error)) }
    return pid
}
