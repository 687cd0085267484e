// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import CWardenLinux
@preconcurrency import Glibc
import SystemPackage

/// What some system calls of a process and of every process it starts returned: the kernel's
/// `raw_syscalls:sys_exit` tracepoint through perf, filtered in the kernel to the calls asked
/// for, one ring buffer per CPU followed.
///
/// Seccomp user notification shows a call before the kernel runs it, never its result: this is
/// how the sandbox learns whether an open, an unlink or a kill it let through succeeded. Not
/// thread-safe: one thread opens, drains and stops it.
public final class SyscallExitTrace {
    public struct Exit: Equatable, Sendable {
        public var tid: Int32
        /// CLOCK_MONOTONIC, in nanoseconds (`sys_monotonicNanoseconds`).
        public var time: Int64
        /// The call's number, in the caller's ABI.
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

    /// The exits drained so far, in each CPU's order.
    public private(set) var exits: [Exit] = []
    /// Exits the kernel dropped because a ring buffer was full, and those drained past `limit`.
    public private(set) var lost: UInt64 = 0
    /// The most exits kept: a sample that opens a million files would otherwise have the
    /// supervisor hold 32 MB of them (a report keeps the first few thousand calls anyway).
    public let limit: Int
    private var rings: [(fd: Int32, ring: UnsafeMutableRawPointer)] = []
    private let pages: Int32
    private var batch: [warden_syscall_exit]

    /// The tracepoint's id, from tracefs (mounted at /sys/kernel/tracing, or under debugfs);
    /// nil where neither is mounted. Read once per process.
    public static let tracepoint: UInt64? = {
        for path in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
            let file = path + "/events/raw_syscalls/sys_exit/id"
            guard let bytes = try? sys_readFile(Array(file.utf8)),
                let id = UInt64(String(decoding: bytes.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self))
            else { continue }
            return id
        }
        return nil
    }()

    /// Follows `pid` (and what it starts after this call) on each of `cpus`, keeping the exits
    /// of the calls numbered `calls`. `pages`: each ring buffer's size (a power of two).
    /// Throws when the tracepoint is unknown or perf refuses (no CAP_PERFMON, a kernel without
    /// syscall tracepoints).
    public init(following pid: Int32, on cpus: [Int32], calls: [Int32], pages: Int32 = 32, limit: Int = 1 << 16)
        throws(SystemCallError)
    {
        self.pages = pages
        self.limit = limit
        self.batch = [warden_syscall_exit](repeating: warden_syscall_exit(), count: 512)
        guard let tracepoint = Self.tracepoint else {
            // tracefs is not mounted where it is looked for: no id for the tracepoint.
            throw SystemCallError(
                syscall: "open", path: Array("/sys/kernel/tracing/events/raw_syscalls/sys_exit/id".utf8),
                errno: Errno(rawValue: ENOENT))
        }
        guard !cpus.isEmpty else { throw SystemCallError(syscall: "perf_event_open", errno: Errno(rawValue: EINVAL)) }
        let filter = Self.filter(calls)
        for cpu in cpus {
            var ring: UnsafeMutableRawPointer?
            let fd = warden_exit_trace_open(pid, cpu, tracepoint, filter, pages, &ring)
            guard fd >= 0, let ring else {
                let error = errno
                stop().wait()
                throw SystemCallError(syscall: "perf_event_open", errno: Errno(rawValue: error))
            }
            rings.append((fd, ring))
        }
    }

    /// A stopped trace's events, being closed by a child process (`warden_close_in_child`): the
    /// last close of a tracepoint's event waits for an RCU grace period, 35-50 ms here, that no
    /// run needs to wait for. `wait` reaps the child; whoever stopped the trace calls it, on a
    /// thread that may wait.
    public struct PendingClose: Sendable {
        let pid: Int32
        let stack: UInt

        /// Waits for the child to have closed the events, and frees its stack.
        public func wait() {
            guard pid > 0 else { return }
            _ = try? sys_waitpid(pid)
            warden_free_child_stack(UnsafeMutableRawPointer(bitPattern: stack))
        }
    }

    deinit {
        // Not stopped (an error path): closed here, waiting if it must.
        for (fd, ring) in rings {
            warden_exit_trace_unmap(ring, pages)
            Glibc.close(fd)
        }
    }

    /// A tracepoint filter that lets through the exits of `calls`: `id == 2 || id == 257`.
    static func filter(_ calls: [Int32]) -> String {
        Set(calls).sorted().map { "id == \($0)" }.joined(separator: " || ")
    }

    /// Moves what the ring buffers hold into `exits`.
    public func drain() {
        for (_, ring) in rings {
            while true {
                let count = batch.withUnsafeMutableBufferPointer { buffer in
                    warden_exit_trace_drain(ring, pages, buffer.baseAddress, Int32(buffer.count), &lost)
                }
                for record in batch.prefix(Int(count)) {
                    guard exits.count < limit else {
                        lost += 1
                        continue
                    }
                    exits.append(
                        Exit(tid: record.tid, time: Int64(record.time), number: record.id, value: record.ret))
                }
                if count < batch.count { break }
            }
        }
    }

    /// Drains, then stops following: the ring buffers are unmapped and the events closed by a
    /// child process (`PendingClose`), `linger` milliseconds later. `exits` stays.
    public func stop(lingeringFor linger: Int32 = 0) -> PendingClose {
        drain()
        var fds: [Int32] = []
        for (fd, ring) in rings {
            warden_exit_trace_unmap(ring, pages)
            fds.append(fd)
        }
        rings = []
        guard !fds.isEmpty else { return PendingClose(pid: 0, stack: 0) }
        var stack: UnsafeMutableRawPointer?
        let pid = warden_close_in_child(fds, Int32(fds.count), linger, &stack)
        return PendingClose(pid: pid, stack: UInt(bitPattern: stack))
    }
}
