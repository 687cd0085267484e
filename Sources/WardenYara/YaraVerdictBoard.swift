// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import WardenCore
import WardenLinux

/// The scans in flight and the verdicts of late, by SHA-256: what the responder waits on when a
/// policy looks at YARA matches of a file whose scan is not done yet.
///
/// - Important: `@unchecked Sendable` is sound because every field is touched with `condition`
///   locked.
public final class YaraVerdictBoard: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: [String: Int] = [:]
    /// Contents a scanner has begun reading.
    private var scanning: Set<String> = []
    private var recent: [String: YaraVerdict] = [:]
    private var order: [String] = []
    private static let recentLimit = 4096

    public init() {}

    /// A scan of `sha256` is on its way: `verdict(for:waitingUntil:)` waits for it.
    public func expect(_ sha256: String) {
        condition.lock()
        pending[sha256, default: 0] += 1
        condition.unlock()
    }

    /// A scanner has begun reading `sha256`'s bytes.
    public func begin(_ sha256: String) {
        condition.lock()
        scanning.insert(sha256)
        condition.unlock()
    }

    /// Whether a scanner is reading `sha256`'s bytes now (its verdict is on its way).
    public func isScanning(_ sha256: String) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return scanning.contains(sha256)
    }

    /// Waits while a scanner reads `sha256`'s bytes, until `deadline` at the latest.
    public func waitWhileScanning(_ sha256: String, until deadline: Int64) {
        condition.lock()
        defer { condition.unlock() }
        while scanning.contains(sha256) {
            let left = deadline - sys_monotonicNanoseconds()
            guard left > 0 else { break }
            _ = condition.wait(until: Date(timeIntervalSinceNow: Double(left) / 1e9))
        }
    }

    /// The scan of `sha256` ended: with `verdict`, or without one (nil: skipped). `expected`:
    /// the scan was announced by `expect` (the exec guard's are not).
    public func publish(_ sha256: String, _ verdict: YaraVerdict?, expected: Bool = true) {
        condition.lock()
        scanning.remove(sha256)
        if expected, let count = pending[sha256] { pending[sha256] = count > 1 ? count - 1 : nil }
        if let verdict {
            if recent.updateValue(verdict, forKey: sha256) == nil { order.append(sha256) }
            if order.count > Self.recentLimit {
                for old in order.prefix(order.count - Self.recentLimit / 2) { recent.removeValue(forKey: old) }
                order.removeFirst(order.count - Self.recentLimit / 2)
            }
        }
        condition.broadcast()
        condition.unlock()
    }

    /// The latest verdict on `sha256` published here, without waiting.
    public func latest(_ sha256: String) -> YaraVerdict? {
        condition.lock()
        defer { condition.unlock() }
        return recent[sha256]
    }

    /// The latest verdict on `sha256`; while a scan of it is in flight, waits for it until
    /// `deadline` (`sys_monotonicNanoseconds()`). Nil when none is known (or came in time).
    public func verdict(for sha256: String, waitingUntil deadline: Int64) -> YaraVerdict? {
        condition.lock()
        defer { condition.unlock() }
        while pending[sha256] != nil {
            let left = deadline - sys_monotonicNanoseconds()
            guard left > 0 else { break }
            _ = condition.wait(until: Date(timeIntervalSinceNow: Double(left) / 1e9))
        }
        return recent[sha256]
    }

}
