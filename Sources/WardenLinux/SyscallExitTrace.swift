// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import CWardenLinux
@preconcurrency import Glibc
import SystemPackage

/// What some system calls of every process of a pid namespace returned: a BPF program on the
/// kernel's raw `sys_exit` tracepoint keeps the exits of the calls asked for, made in the pid
/// namespace followed, in a ring buffer (`warden_exit_trace_load`).
///
/// Seccomp user notification shows a call before the kernel runs it, never its result: this is
/// how the sandbox learns whether an open, an unlink or a kill it let through succeeded. A trace
/// is loaded once and follows one pid namespace after another (`follow`). Not thread-safe: one
/// thread at a time uses it.
public final class SyscallExitTrace {
    public struct Exit: Equatable, Sendable {
        /// The thread, by its id in the initial pid namespace.
        public var tid: Int32
        /// CLOCK_MONOTONIC, in nanoseconds (`sys_monotonicNanoseconds`).
        public var time: Int64
        /// The call's number in its caller's ABI, plus `compatibleABI` for an i386 call.
        public var number: Int64
        /// What it returned: -errno when it failed.
        public var value: Int64

        public init(tid: Int32, time: Int64, number: Int64, value: Int64) {
            self.tid = tid
            self.time = time
            self.number = number
            self.value = value
        }
    }

    /// Added to the number of a call made through i386's ABI.
    public static let compatibleABI: Int64 = 1 << 32

    /// The exits drained since `follow`, in order.
    public private(set) var exits: [Exit] = []
    /// The most exits kept (those drained past it are dropped): a sample that opens a million
    /// files would otherwise have the supervisor hold 32 MB of them (a report keeps the first few
    /// thousand calls anyway).
    public let limit: Int
    private var trace = warden_exit_trace()
    private var batch = [warden_syscall_exit](repeating: warden_syscall_exit(), count: 512)

    /// Whether this process is in the initial pid namespace, where the trace's thread ids are
    /// the ones it sees (the nsfs inode of the initial pid namespace is fixed:
    /// PROC_PID_INIT_INO).
    public static let threadIDsAreOurs: Bool = {
        guard let status = try? sys_statFollowing(Array("/proc/self/ns/pid".utf8)) else { return false }
        return status.inode == 0xEFFF_FFFC
    }()

    /// Whether the trace can be made here at all, given the privileges: the program is written
    /// for x86_64, and its thread ids must be ours.
    public static var isSupported: Bool {
        #if arch(x86_64)
            return threadIDsAreOurs
        #else
            return false
        #endif
    }

    /// Loads the program for the calls numbered `calls` (x86_64's numbers) and
    /// `compatibleCalls` (i386's); it follows nothing until `follow`. `ringBytes`: the ring
    /// buffer's size (a power of two). Throws when the kernel refuses (no CAP_BPF and
    /// CAP_PERFMON, no BPF, another architecture than x86_64).
    public init(calls: [Int32], compatibleCalls: [Int32], ringBytes: Int32 = 256 << 10, limit: Int = 1 << 16)
        throws(SystemCallError)
    {
        self.limit = limit
        let loaded = calls.withUnsafeBufferPointer { native in
            compatibleCalls.withUnsafeBufferPointer { compatible in
                warden_exit_trace_load(
                    native.baseAddress, Int32(native.count), compatible.baseAddress, Int32(compatible.count),
                    ringBytes, &trace)
            }
        }
        guard loaded == 0 else { throw SystemCallError(syscall: "bpf(BPF_PROG_LOAD)", errno: Errno(rawValue: errno)) }
    }

    deinit { warden_exit_trace_close(&trace) }

    /// Follows the processes in the pid namespace of `process` from now on (and no other), with
    /// the program attached; `exits` starts empty.
    public func follow(pidNamespaceOf process: Int32) throws(SystemCallError) {
        // A magic link: followed on purpose (no other link can stand in /proc/PID/ns).
        let namespace = try sys_statFollowing(Array("/proc/\(process)/ns/pid".utf8))
        guard warden_exit_trace_target(&trace, namespace.device, namespace.inode) == 0 else {
            throw SystemCallError(syscall: "bpf(BPF_MAP_UPDATE_ELEM)", errno: Errno(rawValue: errno))
        }
        // Whatever the namespace followed before left (nothing, as a rule: its processes are gone).
        drain()
        exits = []
        guard warden_exit_trace_attach(&trace) == 0 else {
            throw SystemCallError(syscall: "bpf(BPF_RAW_TRACEPOINT_OPEN)", errno: Errno(rawValue: errno))
        }
    }

    /// Moves what the ring buffer holds into `exits`.
    public func drain() {
        while true {
            let count = batch.withUnsafeMutableBufferPointer { buffer in
                warden_exit_trace_drain(&trace, buffer.baseAddress, Int32(buffer.count))
            }
            for record in batch.prefix(Int(count)) where exits.count < limit {
                exits.append(Exit(tid: record.tid, time: Int64(record.time), number: record.id, value: record.ret))
            }
            if count < batch.count { break }
        }
    }

    /// Detaches the program: the host's system calls no longer run it. `follow` attaches it
    /// again.
    public func detach() { warden_exit_trace_detach(&trace) }
}
