// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Synchronization

/// A fixed set of named counters that many threads bump: the sensor's and the intake's metrics.
public final class CounterSet<Counter: CaseIterable & Hashable & Sendable>: Sendable
where Counter.AllCases: Sendable {
    private let values: Mutex<[Int]>
    private let index: [Counter: Int]

    public init() {
        index = Dictionary(uniqueKeysWithValues: Counter.allCases.enumerated().map { ($1, $0) })
        values = Mutex([Int](repeating: 0, count: index.count))
    }

    public func add(_ counter: Counter, _ amount: Int = 1) {
        let slot = index[counter, default: 0]
        values.withLock { $0[slot] += amount }
    }

    public subscript(_ counter: Counter) -> Int {
        let slot = index[counter, default: 0]
        return values.withLock { $0[slot] }
    }

    /// Every counter with its value, in declaration order.
    public var snapshot: [(Counter, Int)] {
        let current = values.withLock { $0 }
        return Counter.allCases.map { ($0, current[index[$0, default: 0]]) }
    }
}

/// A counter `/metrics` shows: its name's suffix (the raw value) and what it counts.
public protocol PrometheusCounter: CaseIterable, Hashable, Sendable, RawRepresentable where RawValue == String {
    /// The `# HELP` text: one line saying what is counted.
    var help: String { get }
}

extension CounterSet where Counter: PrometheusCounter {
    /// The counters in Prometheus text exposition, each named `<prefix><raw value>`.
    public func prometheusText(prefix: String) -> String {
        snapshot.map { counter, value in
            let name = prefix + counter.rawValue
            return "# HELP \(name) \(counter.help)\n# TYPE \(name) counter\n\(name) \(value)\n"
        }.joined()
    }
}
