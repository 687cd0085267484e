// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// Exponential backoff with full jitter: the n-th wait in a row is uniform in
/// [0, min(cap, base × 2ⁿ)], so many agents whose receiver came back do not retry in step.
public struct RetryBackoff: Sendable {
    public var baseSeconds: Double
    public var capSeconds: Double
    public private(set) var failures = 0

    public init(baseSeconds: Double = 0.25, capSeconds: Double = 10) {
        self.baseSeconds = baseSeconds
        self.capSeconds = capSeconds
    }

    /// The ceiling of the next wait.
    public var ceiling: Double {
        min(capSeconds, baseSeconds * Double(1 << min(failures, 30)))
    }

    /// Counts a failure and returns how long to wait before the next attempt; `unit` is a
    /// uniform draw from [0, 1].
    public mutating func next(unit: Double = Double.random(in: 0...1)) -> Double {
        let wait = ceiling * min(max(unit, 0), 1)
        failures += 1
        return wait
    }

    public mutating func reset() { failures = 0 }
}

/// What a receiver's answer means for the event it was sent.
public enum DeliveryOutcome: Hashable, Sendable {
    /// Taken (2xx).
    case delivered
    /// Refused for what it is (400, 413, 415, 422): sending it again would get the same answer,
    /// so it is counted as failed and the next event goes.
    case rejected(String)
    /// Not taken this time (no connection, a timeout, 5xx, 401/403, 429, …): sent again after a
    /// backoff, with every event after it.
    case retry(String)

    public init(status: Int, body: String) {
        switch status {
        case 200..<300: self = .delivered
        case 400, 413, 415, 422: self = .rejected("HTTP \(status)\(body.isEmpty ? "" : ": \(body)")")
        default: self = .retry("HTTP \(status)\(body.isEmpty ? "" : ": \(body)")")
        }
    }
}
