// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// Gauges in Prometheus text exposition: values that go up and down (queue depths), beside the
/// counters of `CounterSet`.
public struct PrometheusGauge: Sendable {
    public var name: String
    public var help: String
    public var value: Int

    public init(_ name: String, _ value: Int, help: String) {
        self.name = name
        self.help = help
        self.value = value
    }

    /// `# HELP`, `# TYPE … gauge` and the sample line of each.
    public static func text(_ gauges: [PrometheusGauge]) -> String {
        gauges.map { "# HELP \($0.name) \($0.help)\n# TYPE \($0.name) gauge\n\($0.name) \($0.value)\n" }.joined()
    }
}
