// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation

/// Falco's priorities, most severe first (Falco's own order and spelling).
public enum FalcoPriority: Int, Sendable, CaseIterable, Comparable, Codable {
    case emergency = 0, alert, critical, error, warning, notice, informational, debug

    /// The name Falco prints (`Warning`, `Critical`, …).
    public var name: String {
        switch self {
        case .emergency: "Emergency"
        case .alert: "Alert"
        case .critical: "Critical"
        case .error: "Error"
        case .warning: "Warning"
        case .notice: "Notice"
        case .informational: "Informational"
        case .debug: "Debug"
        }
    }

    /// Parses a priority the way Falco accepts it: any case, `Info` for `Informational`.
    public init?(name: String) {
        switch name.lowercased() {
        case "emergency": self = .emergency
        case "alert": self = .alert
        case "critical": self = .critical
        case "error": self = .error
        case "warning": self = .warning
        case "notice": self = .notice
        case "informational", "info": self = .informational
        case "debug": self = .debug
        default: return nil
        }
    }

    /// More severe compares as greater: `.critical > .warning`.
    public static func < (lhs: FalcoPriority, rhs: FalcoPriority) -> Bool { lhs.rawValue > rhs.rawValue }
}

/// One value of Falco's `output_fields`: a string, a number (signed, or unsigned above
/// `Int64.max`), a boolean, or null.
public enum FieldValue: Hashable, Sendable, Codable, CustomStringConvertible {
    case string(String)
    case integer(Int64)
    case unsigned(UInt64)
    case double(Double)
    case bool(Bool)
    case null

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        // Most values are strings: try that first, since every failed attempt costs a thrown error.
        // The decoder never converts between JSON kinds, so the order cannot change the result
        // (integers are tried before Double so 64-bit values stay exact).
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(UInt64.self) {
            self = .unsigned(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "output_fields values must be strings, numbers, booleans or null")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .unsigned(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }

    /// The value as Falco would print it in an output line (`<NA>` for null).
    public var description: String {
        switch self {
        case .string(let value): value
        case .integer(let value): String(value)
        case .unsigned(let value): String(value)
        case .double(let value): String(value)
        case .bool(let value): String(value)
        case .null: "<NA>"
        }
    }

    /// The text, for string values (and the printed form of numbers).
    public var text: String? {
        switch self {
        case .null: nil
        default: description
        }
    }

    /// An unsigned integer, from a number or a numeric string (Falco prints inode numbers both ways).
    public var unsignedValue: UInt64? {
        switch self {
        case .integer(let value): value >= 0 ? UInt64(value) : nil
        case .unsigned(let value): value
        case .string(let value): UInt64(value)
        default: nil
        }
    }
}

/// One Falco alert, as Falco's `http_output`, `program_output` and `file_output` write it with
/// `json_output: true`, or as Falcosidekick's webhook sends it (which adds `uuid`).
public struct FalcoAlert: Hashable, Sendable {
    public var rule: String
    public var priority: FalcoPriority
    public var time: Timestamp
    /// The `time` text exactly as Falco wrote it.
    public var timeText: String
    public var source: String?
    public var hostname: String?
    public var output: String?
    public var outputFields: [String: FieldValue]
    public var tags: [String]
    /// Falcosidekick's delivery id.
    public var uuid: String?
    /// The JSON exactly as received: nothing the sender said is lost, unknown keys included.
    public var raw: String

    /// Falco's own events ("Falco internal: syscall event drop" and friends), not rule matches.
    public var isInternal: Bool { rule.hasPrefix("Falco internal:") }

    /// A syscall event drop report: Falco missed events around `time`, so a correlation in that
    /// window may be incomplete.
    public var isEventDrop: Bool { isInternal && rule.localizedCaseInsensitiveContains("event drop") }

    /// `output_fields[name]`'s text, if present and not null.
    public func field(_ name: String) -> String? { outputFields[name]?.text }
}

/// Why an alert was refused: the HTTP intake answers 400 with this reason, `ingest` prints it
/// with the line number.
public struct AlertDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

extension FalcoAlert {
    /// Decodes one alert from its JSON bytes.
    ///
    /// - Throws: `AlertDecodingError` naming what is wrong: not JSON, not an object, or a missing
    ///   or invalid `rule`, `priority` or `time`.
    ///
    /// - Parameter acceptingAnyTime: an alert read back from the store is shown whatever its
    ///   time; one arriving from outside must have a time in the accepted window.
    public static func decode(_ data: Data, acceptingAnyTime: Bool = false) throws(AlertDecodingError) -> FalcoAlert {
        let wire = try data.withUnsafeBytes { bytes in
            Result { () throws(AlertDecodingError) in try FalcoAlertReader.read(bytes) }
        }.get()
        guard let rule = wire.rule, !rule.isEmpty else { throw AlertDecodingError("missing \"rule\"") }
        guard let priorityText = wire.priority else { throw AlertDecodingError("missing \"priority\"") }
        guard let priority = FalcoPriority(name: priorityText) else {
            throw AlertDecodingError("unknown priority \"\(priorityText)\" (Emergency … Debug)")
        }
        guard let timeText = wire.time else { throw AlertDecodingError("missing \"time\"") }
        guard let time = Timestamp(rfc3339: timeText) else {
            throw AlertDecodingError("\"time\" is not RFC 3339: \"\(timeText)\"")
        }
        guard acceptingAnyTime || time.isInAcceptedWindow else {
            throw AlertDecodingError(
                "\"time\" \(timeText) is outside the accepted window "
                    + "(\(Timestamp.earliestAccepted.rfc3339) to \(Timestamp.latestAccepted.rfc3339))")
        }
        return FalcoAlert(
            rule: rule, priority: priority, time: time, timeText: timeText, source: wire.source,
            hostname: wire.hostname, output: wire.output, outputFields: wire.outputFields ?? [:],
            tags: wire.tags ?? [], uuid: wire.uuid?.isEmpty == false ? wire.uuid : nil,
            raw: String(decoding: data, as: UTF8.self))
    }
}

/// Who handed an alert over, and whether the agent may believe it came from Falco.
public struct AlertSender: Hashable, Sendable {
    /// Authenticated senders: mutual TLS with a client certificate of the agent's CA, the bearer
    /// token, a unix-socket peer with an allowed uid, an ingested file only root can write.
    public var authenticated: Bool
    /// How, for the audit: `mtls CN=falco`, `bearer token`, `unix peer uid 0`, `ingest /var/log/falco.json`,
    /// `unauthenticated (intake.insecure)`.
    public var via: String

    public init(authenticated: Bool, via: String) {
        self.authenticated = authenticated
        self.via = via
    }

    /// Alerts stored before senders were recorded, and those the tests hand in directly.
    public static let unrecorded = AlertSender(authenticated: true, via: "not recorded")
}
