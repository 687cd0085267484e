// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import WardenCore

/// Counters and a latency histogram for the Falco intake, rendered for `/metrics`.
public final class IntakeMetrics: Sendable {
    public enum Counter: String, PrometheusCounter {
        case received = "alerts_received_total"
        case rejected = "alerts_rejected_total"
        case duplicates = "alerts_duplicate_total"
        case correlated = "alerts_correlated_total"
        case withoutEvidence = "alerts_without_evidence_total"
        case busy = "alerts_busy_total"
        case unauthorized = "alerts_unauthorized_total"
        /// Accepted without authentication (`intake.insecure`): stored, never acted on.
        case unauthenticated = "alerts_unauthenticated_total"
        case tooLarge = "alerts_too_large_total"
        case failed = "alerts_failed_total"
        case lateCorrelations = "alerts_late_correlated_total"

        public var help: String {
            switch self {
            case .received: "Alerts received, on any intake."
            case .rejected: "Alerts refused as malformed (HTTP 400)."
            case .duplicates: "Alerts already stored (same id), acknowledged without a second record."
            case .correlated: "Alerts matched to recorded file evidence."
            case .withoutEvidence: "Alerts stored with no file evidence matched."
            case .busy: "Alerts refused because the store was busy (HTTP 503)."
            case .unauthorized: "Requests refused for want of authentication (HTTP 401)."
            case .unauthenticated: "Alerts accepted without authentication (intake.insecure): stored, never acted on."
            case .tooLarge: "Requests refused as too large (HTTP 413)."
            case .failed: "Alerts that could not be stored."
            case .lateCorrelations: "Alerts matched to evidence recorded after they arrived."
            }
        }
    }

    /// Upper bounds of the latency buckets, in seconds (Prometheus `le`).
    public static let latencyBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]

    private let counters = CounterSet<Counter>()
    private let latency = LatencyHistogram(
        name: "shmwarden_alert_intake_seconds", help: "From an alert's request to its durable commit.",
        bounds: latencyBuckets)

    public init() {}

    public func add(_ counter: Counter, _ amount: Int = 1) { counters.add(counter, amount) }

    public subscript(_ counter: Counter) -> Int { counters[counter] }

    /// Records how long one accepted alert took from request to durable commit.
    public func observeLatency(seconds: Double) { latency.observe(seconds: seconds) }

    /// The Prometheus text exposition of these metrics (`shmwarden_` prefix).
    public func prometheusText() -> String {
        counters.prometheusText(prefix: "shmwarden_") + latency.prometheusText()
    }
}
