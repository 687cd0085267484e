// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Synchronization
import SystemPackage
import WardenCore
import WardenLinux

/// NUL-terminated copies of Swift strings that live for the duration of `body` (for C arrays).
enum CStrings {
    static func with<T>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) throws -> T) rethrows -> T {
        let pointers = strings.map { strdup($0) }
        defer { pointers.forEach { free($0) } }
        return try body(pointers)
    }
}

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

/// Counts the seccomp audit records (type 1326) the kernel writes to /dev/kmsg for the sandbox
/// uid from the moment it is created: the calls the filter refused or killed for.
final class KernelAuditReader {
    private let fd: FileDescriptor?

    init() {
        // Non-blocking, and positioned at the end: only records from now on.
        fd = try? sys_open(Array("/dev/kmsg".utf8), flags: O_RDONLY | O_NONBLOCK, followingSymlinks: true)
        if let fd { try? sys_seekToEnd(fd) }
    }

    deinit { if let fd { sys_close(fd) } }

    func deniedCalls(uid: UInt32) -> [String: Int] {
        guard let fd else { return [:] }
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
            } catch where error.errno == .brokenPipe {
                continue
            } catch {
                break
            }
            let text = String(decoding: record[0..<count], as: UTF8.self)
            guard text.contains("type=1326"), text.contains(" uid=\(uid) "),
                let number = Self.field("syscall", in: text).flatMap({ Int32($0) })
            else { continue }
            counts[SandboxFilter.name(of: number), default: 0] += 1
        }
        return counts
    }

    static func field(_ name: String, in text: String) -> String? {
        guard let range = text.range(of: " \(name)=") else { return nil }
        return String(text[range.upperBound...].prefix { !$0.isWhitespace })
    }
}
