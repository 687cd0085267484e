// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Synchronization

/// A latency histogram that many threads add to, rendered for Prometheus (cumulative `le`
/// buckets in seconds, `_sum`, `_count`).
public final class LatencyHistogram: Sendable {
    public let name: String
    /// The `# HELP` text.
    public let help: String
    /// Upper bounds of the buckets, in seconds.
    public let bounds: [Double]

    private struct State {
        var buckets: [Int]
        var count = 0
        var sum = 0.0
    }

    private let state: Mutex<State>

    public init(name: String, help: String, bounds: [Double]) {
        self.name = name
        self.help = help
        self.bounds = bounds
        state = Mutex(State(buckets: [Int](repeating: 0, count: bounds.count)))
    }

    public func observe(seconds: Double) {
        state.withLock { state in
            for (index, bound) in bounds.enumerated() where seconds <= bound { state.buckets[index] += 1 }
            state.count += 1
            state.sum += seconds
        }
    }

    /// How many were observed.
    public var count: Int { state.withLock { $0.count } }

    public func prometheusText() -> String {
        let snapshot = state.withLock { $0 }
        var out = "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        for (index, bound) in bounds.enumerated() {
            out += "\(name)_bucket{le=\"\(bound)\"} \(snapshot.buckets[index])\n"
        }
        out += "\(name)_bucket{le=\"+Inf\"} \(snapshot.count)\n"
        out += "\(name)_sum \(snapshot.sum)\n\(name)_count \(snapshot.count)\n"
        return out
    }
}
