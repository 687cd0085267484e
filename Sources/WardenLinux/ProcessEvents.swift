// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

// The kernel's process events connector (netlink CN_PROC): one datagram per exec, on every
// exec of the host, without eBPF. Needs CAP_NET_ADMIN.

import CWardenLinux
@preconcurrency import Glibc
import SystemPackage

/// One exec, as the connector tells it.
public struct ProcessExecEvent: Hashable, Sendable {
    /// The thread that called exec (after exec, the thread group's leader has its id).
    public var pid: Int32
    public var tgid: Int32
    /// When, in CLOCK_MONOTONIC nanoseconds.
    public var monotonicNanoseconds: UInt64

    public init(pid: Int32, tgid: Int32, monotonicNanoseconds: UInt64) {
        self.pid = pid
        self.tgid = tgid
        self.monotonicNanoseconds = monotonicNanoseconds
    }
}

/// Decodes the exec events of connector datagrams: pure, nothing in them trusted for a length
/// it does not fit.
public enum ProcessEventDecoder {
    static let layout = warden_proc_event_layout()

    /// The exec events in one datagram (one or more netlink messages).
    public static func execs(in datagram: UnsafeRawBufferPointer) -> [ProcessExecEvent] {
        var out: [ProcessExecEvent] = []
        var offset = 0
        let header = 16  // struct nlmsghdr
        while offset + header <= datagram.count {
            let length = Int(datagram.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            guard length >= header, offset + length <= datagram.count else { break }
            let event = offset + Int(layout.event)
            if event + Int(layout.size) <= offset + length {
                let what = datagram.loadUnaligned(fromByteOffset: event + Int(layout.what), as: UInt32.self)
                if what == layout.exec_what {
                    out.append(
                        ProcessExecEvent(
                            pid: datagram.loadUnaligned(fromByteOffset: event + Int(layout.exec_pid), as: Int32.self),
                            tgid: datagram.loadUnaligned(fromByteOffset: event + Int(layout.exec_tgid), as: Int32.self),
                            monotonicNanoseconds: datagram.loadUnaligned(
                                fromByteOffset: event + Int(layout.timestamp), as: UInt64.self)))
                }
            }
            offset += (length + 3) & ~3
        }
        return out
    }

    /// A datagram as the kernel sends one exec event: for tests and fuzzing.
    public static func datagram(for event: ProcessExecEvent) -> [UInt8] {
        let total = Int(layout.event) + Int(layout.size)
        var bytes = [UInt8](repeating: 0, count: total)
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt32(total), toByteOffset: 0, as: UInt32.self)
            let start = Int(layout.event)
            raw.storeBytes(of: layout.exec_what, toByteOffset: start + Int(layout.what), as: UInt32.self)
            raw.storeBytes(of: event.monotonicNanoseconds, toByteOffset: start + Int(layout.timestamp), as: UInt64.self)
            raw.storeBytes(of: event.pid, toByteOffset: start + Int(layout.exec_pid), as: Int32.self)
            raw.storeBytes(of: event.tgid, toByteOffset: start + Int(layout.exec_tgid), as: Int32.self)
        }
        return bytes
    }
}

/// A subscription to the host's exec events.
///
/// - Important: Not thread-safe: one thread reads it.
public final class ProcessEventSocket {
    public let descriptor: FileDescriptor
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 8)

    /// Subscribes, with a receive buffer of `receiveBufferBytes` for bursts.
    public init(receiveBufferBytes: Int = 4 << 20) throws(SystemCallError) {
        descriptor = FileDescriptor(
            rawValue: try retryingInterrupts("socket(NETLINK_CONNECTOR)") {
                warden_proc_events_open(Int32(clamping: receiveBufferBytes))
            })
    }

    deinit {
        warden_proc_events_close(descriptor.rawValue)
        buffer.deallocate()
    }

    /// What one read brought: the exec events of the datagrams queued now, or that some were
    /// lost (the receive buffer overflowed: ENOBUFS) before these.
    public struct Batch {
        public var execs: [ProcessExecEvent] = []
        public var lost = false
    }

    /// Reads every queued datagram without waiting.
    public func drain(limit: Int = 4096) throws(SystemCallError) -> Batch {
        var batch = Batch()
        for _ in 0..<limit {
            let count = recv(descriptor.rawValue, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
            if count < 0 {
                let error = Errno(rawValue: Glibc.errno)
                if error == .interrupted { continue }
                if error == .resourceTemporarilyUnavailable { break }
                if error == .noBufferSpace {
                    batch.lost = true
                    continue
                }
                throw SystemCallError(syscall: "recv(NETLINK_CONNECTOR)", errno: error)
            }
            batch.execs += ProcessEventDecoder.execs(in: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
        return batch
    }
}
