// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// What an event for the fleet is about: each output chooses the types it takes.
public enum FleetEventType: String, Sendable, CaseIterable, Codable {
    /// An executable dropped on, or run from, a tmpfs.
    case executable
    /// A payload taken from a running process: a memfd, a deleted executable, a script.
    case fileless
    /// An exec the guard refused, or would have refused in monitor mode.
    case `guard`
    /// A response action: performed, planned, skipped or failed.
    case action
    /// A finished sandbox run.
    case sandbox
    /// A correlated Falco alert with what the agent knows about its file.
    case alert
    /// YARA rules matched a capture's bytes.
    case yara
    /// Events this output missed because the outbox was full (sent whatever the filter).
    case outbox
    /// `shmwarden outputs test` (sent whatever the filter).
    case test

    /// The types an output may choose (`outbox` and `test` always go).
    public static let selectable: [FleetEventType] = [
        .executable, .fileless, .guard, .action, .sandbox, .alert, .yara,
    ]
}

/// One event for Falcosidekick, in Falco's JSON: `rule`, `priority`, `time`, `output` and
/// `output_fields` as Falco writes them, with `source: shmwarden`. `shmwarden.event_id` (also
/// sent as `uuid`, which Falcosidekick replaces) stays the same on every delivery attempt, so a
/// receiver can drop repeats.
public struct FleetEvent: Hashable, Sendable {
    public var id: String
    public var type: FleetEventType
    public var rule: String
    public var priority: FalcoPriority
    public var time: Timestamp
    /// The sentence after Falco's `HH:MM:SS.nnnnnnnnn: Priority ` prefix, which `json` adds.
    public var sentence: String
    /// In the order they are written.
    public var fields: [Field]
    public var tags: [String]

    public struct Field: Hashable, Sendable {
        public var name: String
        public var value: FieldValue

        public init(_ name: String, _ value: FieldValue) {
            self.name = name
            self.value = value
        }
    }

    public static let source = "shmwarden"

    public init(
        id: String, type: FleetEventType, rule: String, priority: FalcoPriority, time: Timestamp, sentence: String,
        fields: [Field], tags: [String] = []
    ) {
        self.id = id
        self.type = type
        self.rule = rule
        self.priority = priority
        self.time = time
        self.sentence = sentence
        self.fields = fields
        self.tags = tags
    }

    /// Falco's `output`: the time of day, the priority, then the sentence, on one line. A path or
    /// command line in it is the attacker's text: its control characters show as `\xNN` (the
    /// exact values are in `output_fields`).
    public var output: String {
        let stamp = time.rfc3339
        let timeOfDay = stamp.split(separator: "T").last.map { String($0.dropLast()) } ?? stamp
        return "\(timeOfDay): \(priority.name) \(TerminalText.escaped(sentence, keepingLineBreaks: false))"
    }

    /// The JSON body, one line. `shmwarden.event_id` and `shmwarden.event_type` lead the fields.
    public func json(hostname: String) -> String {
        var out = "{\"uuid\":"
        JSONText.appendString(id, to: &out)
        out += ",\"output\":"
        JSONText.appendString(output, to: &out)
        out += ",\"priority\":"
        JSONText.appendString(priority.name, to: &out)
        out += ",\"rule\":"
        JSONText.appendString(rule, to: &out)
        out += ",\"time\":"
        JSONText.appendString(time.rfc3339, to: &out)
        out += ",\"output_fields\":{\"shmwarden.event_id\":"
        JSONText.appendString(id, to: &out)
        out += ",\"shmwarden.event_type\":"
        JSONText.appendString(type.rawValue, to: &out)
        for field in fields {
            out += ","
            JSONText.appendString(field.name, to: &out)
            out += ":"
            JSONText.append(field.value, to: &out)
        }
        out += "},\"source\":"
        JSONText.appendString(Self.source, to: &out)
        out += ",\"tags\":["
        for (index, tag) in tags.enumerated() {
            if index > 0 { out += "," }
            JSONText.appendString(tag, to: &out)
        }
        out += "],\"hostname\":"
        JSONText.appendString(hostname, to: &out)
        out += "}"
        return out
    }
}
