// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Synchronization
import SystemPackage
import WardenCore
import WardenLinux

/// A thread that can be waited for.
final class ThreadJoin: Sendable {
    private let done = DispatchSemaphore(value: 0)

    static func start(name: String, _ body: @escaping @Sendable () -> Void) -> ThreadJoin {
        let join = ThreadJoin()
        DedicatedThread.detach(name: name) {
            body()
            join.done.signal()
        }
        return join
    }

    func join() { done.wait() }
}

/// Reads a pipe to its end on its own thread, keeping the first `limit` bytes and draining the
/// rest (a sample that writes without end must not block on a full pipe).
final class OutputCapture: Sendable {
    private final class Buffer: Sendable {
        let state = Mutex<(bytes: [UInt8], truncated: Bool)>(([], false))
    }

    private let buffer = Buffer()
    private let thread: ThreadJoin

    init(_ fd: FileDescriptor, limit: Int) {
        let buffer = self.buffer
        thread = ThreadJoin.start(name: "warden-output") {
            var chunk = [UInt8](repeating: 0, count: 16 * 1024)
            while true {
                let count = chunk.withUnsafeMutableBytes { (try? sys_read(fd, into: $0)) ?? 0 }
                if count <= 0 { return }
                buffer.state.withLock { state in
                    let room = max(0, limit - state.bytes.count)
                    state.bytes += chunk[0..<min(room, count)]
                    if count > room { state.truncated = true }
                }
            }
        }
    }

    /// Waits for the end of the output; returns it as text (invalid UTF-8 repaired).
    func finish() -> (String, Bool) {
        thread.join()
        return buffer.state.withLock { (String(decoding: $0.bytes, as: UTF8.self), $0.truncated) }
    }
}

/// Counts the kernel's seccomp audit records (type 1326) for the sandbox uid from the moment it
/// is created: the calls the filter refused or killed for.
///
/// Read from the audit netlink socket's read-only multicast group, where every record arrives.
/// /dev/kmsg, the fallback, gets only what the printk rate limit lets through when no auditd
/// runs (10 records per 5 s: a sample that tried a dozen forbidden calls was under-counted).
final class KernelAuditReader {
    private enum Source {
        case netlink(FileDescriptor)
        case kmsg(FileDescriptor)
    }
    private let source: Source?

    init() {
        if let listener = try? sys_auditListen() {
            source = .netlink(listener)
        } else if let kmsg = try? sys_open(
            Array("/dev/kmsg".utf8), flags: O_RDONLY | O_NONBLOCK, followingSymlinks: true)
        {
            // Non-blocking, and positioned at the end: only records from now on.
            try? sys_seekToEnd(kmsg)
            source = .kmsg(kmsg)
        } else {
            source = nil
        }
    }

    deinit {
        switch source {
        case .netlink(let fd), .kmsg(let fd): sys_close(fd)
        case nil: break
        }
    }

    /// The sentinel made by `runEnded`, whose record marks where the run's records end.
    private var sentinel: Int32?

    /// Says the run is over (its processes are gone): makes the sentinel now, so that its
    /// record travels while the caller collects the rest of the report, instead of after.
    func runEnded() {
        guard case .netlink = source, sentinel == nil else { return }
        sentinel = Self.sentinelArrives.withLock { $0 } == false ? -1 : ((try? sys_auditSentinel()) ?? -1)
    }

    /// The refused and killed calls of `uid` since this reader was made, by name.
    func deniedCalls(uid: UInt32) -> [String: Int] {
        switch source {
        case .netlink(let fd): netlinkDeniedCalls(fd, uid: uid)
        case .kmsg(let fd): kmsgDeniedCalls(fd, uid: uid)
        case nil: [:]
        }
    }

    /// How long to wait for the sentinel's record: it normally arrives within microseconds.
    static let sentinelWaitNanoseconds: Int64 = 100_000_000

    /// Whether a sentinel's record ever arrived in this process: where none does (seccomp's log
    /// action not logged), later runs neither make one nor wait for it.
    private static let sentinelArrives = Mutex<Bool?>(nil)

    /// Reads records until the sentinel's: the kernel's kauditd thread sends them in order but
    /// later, and under a saturated CPU a sample's last ones were not out yet when the report
    /// was made.
    private func netlinkDeniedCalls(_ fd: FileDescriptor, uid: UInt32) -> [String: Int] {
        runEnded()
        let sentinel = self.sentinel ?? -1
        var waiting = sentinel > 0
        let deadline = sys_monotonicNanoseconds() + Self.sentinelWaitNanoseconds
        var counts: [String: Int] = [:]
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            let count: Int
            do {
                guard let read = try sys_read(fd, into: buffer), read > 0 else {
                    let left = deadline - sys_monotonicNanoseconds()
                    guard waiting, left > 0 else { break }
                    var fds = [pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)]
                    _ = try? sys_poll(&fds, timeout: Int32(max(1, left / 1_000_000)))
                    continue
                }
                count = read
            } catch  where error.errno == .noBufferSpace {
                continue  // the socket overflowed: some records are lost, read on
            } catch {
                break
            }
            // Netlink messages: a 16-byte header (length, type, flags, sequence, port), then the
            // record's text, each padded to 4 bytes.
            var offset = 0
            while offset + 16 <= count {
                let length = Int(buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
                let type = buffer.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self)
                guard length >= 16, offset + length <= count else { break }
                if type == 1326 {
                    let text = " " + String(decoding: buffer[(offset + 16)..<(offset + length)], as: UTF8.self)
                    if waiting, Self.field("pid", in: text) == String(sentinel) {
                        waiting = false
                    } else if text.contains(" uid=\(uid) "), !Self.isObserverAnswer(text),
                        let number = Self.field("syscall", in: text).flatMap({ Int32($0) })
                    {
                        counts[Self.callName(number, in: text), default: 0] += 1
                    }
                }
                offset += (length + 3) & ~3
            }
            if !waiting && sentinel > 0 {
                // What came with the sentinel's message is counted; later records are not ours.
                break
            }
        }
        if sentinel > 0 { Self.sentinelArrives.withLock { if $0 != true { $0 = !waiting } } }
        return counts
    }

    private func kmsgDeniedCalls(_ fd: FileDescriptor, uid: UInt32) -> [String: Int] {
        var counts: [String: Int] = [:]
        let record = UnsafeMutableRawBufferPointer.allocate(byteCount: 8192, alignment: 8)
        defer { record.deallocate() }
        while true {
            // One read returns one record; EAGAIN (nil) at the end; EPIPE when records were
            // overwritten before we read them (the next read goes on with the oldest left).
            let count: Int
            do {
                guard let read = try sys_read(fd, into: record), read > 0 else { break }
                count = read
            } catch  where error.errno == .brokenPipe {
                continue
            } catch {
                break
            }
            let text = String(decoding: record[0..<count], as: UTF8.self)
            guard text.contains("type=1326"), text.contains(" uid=\(uid) "), !Self.isObserverAnswer(text),
                let number = Self.field("syscall", in: text).flatMap({ Int32($0) })
            else { continue }
            counts[Self.callName(number, in: text), default: 0] += 1
        }
        return counts
    }

    /// The name of call `number` in the ABI the record names (`arch=40000003`: an i386 call,
    /// whose numbers are not x86_64's: its write(2) is x86_64's stat(2)).
    static func callName(_ number: Int32, in record: String) -> String {
        guard let architecture = field("arch", in: record).flatMap({ UInt32($0, radix: 16) }) else {
            return SandboxFilter.name(of: number)
        }
        return SandboxFilter.name(of: number, architecture: SeccompArchitecture(token: architecture))
    }

    /// Whether a record is of a call the observer answered itself (a stand-in socket, a connect
    /// answered as with no network): the kernel records every notified call that a supervisor
    /// answers without CONTINUE, with the notification's action code. The filter's own refusals
    /// carry ERRNO's or KILL's.
    static func isObserverAnswer(_ record: String) -> Bool {
        field("code", in: record).flatMap { UInt32($0.dropFirst(2), radix: 16) } == SandboxFilter.notifyAction
    }

    static func field(_ name: String, in text: String) -> String? {
        guard let range = text.range(of: " \(name)=") else { return nil }
        return String(text[range.upperBound...].prefix { !$0.isWhitespace })
    }
}
