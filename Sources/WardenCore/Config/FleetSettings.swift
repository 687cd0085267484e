// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Yams

/// One receiver of the agent's events (`outputs:` in the configuration file): Falcosidekick's
/// input, or anything that takes Falco's JSON by POST.
public struct FleetOutput: Hashable, Sendable {
    /// Names the output in metrics, logs and the outbox's delivery cursor.
    public var name: String
    public var url: String
    /// Events below this priority are not sent to this output.
    public var minimumPriority: FalcoPriority = .debug
    public var types: Set<FleetEventType> = Set(FleetEventType.selectable)
    /// For one request: connecting, sending, and the whole answer.
    public var timeoutSeconds: Int64 = 10
    /// The CA that signed the receiver's certificate (default: the system's trust store).
    public var caFile: String?
    /// A client certificate and key, for a receiver that asks for one (Falcosidekick's `mutualtls`).
    public var certificateFile: String?
    public var keyFile: String?
    /// A file holding a token sent as `Authorization: Bearer <token>`.
    public var tokenFile: String?
    /// Extra request headers, in order.
    public var headers: [Header] = []

    public struct Header: Hashable, Sendable {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public init(name: String, url: String) {
        self.name = name
        self.url = url
    }

    /// Whether an event of `type` at `priority` goes to this output. Overflow notices and test
    /// events always do.
    public func accepts(type: FleetEventType, priority: FalcoPriority) -> Bool {
        if type == .outbox || type == .test { return true }
        return types.contains(type) && priority >= minimumPriority
    }

    static let keys = [
        "name", "url", "min-priority", "events", "timeout", "ca", "certificate", "key", "token-file", "headers",
    ]

    /// An `http://` or `https://` URL with a host, and nothing a POST cannot go to.
    public static func urlProblem(_ text: String) -> String? {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https"
        else { return "url must be http://HOST[:PORT]/PATH or https://…, not '\(text)'" }
        guard let host = url.host, !host.isEmpty else { return "url '\(text)' has no host" }
        if url.user != nil || url.password != nil { return "url '\(text)' must not carry credentials (use token-file)" }
        if url.fragment != nil { return "url '\(text)' must not have a #fragment" }
        return nil
    }

    static func parseList(
        _ node: Node, fail: (Node, String) -> Void, absolute: (Node, String) -> String?
    ) -> [FleetOutput] {
        guard case .sequence(let sequence) = node else {
            fail(node, "outputs must be a list of outputs (each with at least name and url)")
            return []
        }
        var outputs: [FleetOutput] = []
        for item in sequence {
            guard let output = parse(item, fail: fail, absolute: absolute) else { continue }
            if outputs.contains(where: { $0.name == output.name }) {
                fail(item, "two outputs are named '\(output.name)'")
                continue
            }
            outputs.append(output)
        }
        return outputs
    }

    static func parse(_ node: Node, fail: (Node, String) -> Void, absolute: (Node, String) -> String?) -> FleetOutput? {
        guard case .mapping(let mapping) = node else {
            fail(node, "each output must be a mapping (\(keys.joined(separator: ", ")))")
            return nil
        }
        var name: String?
        var url: String?
        var output = FleetOutput(name: "", url: "")
        var valid = true
        func bad(_ node: Node, _ reason: String) {
            fail(node, reason)
            valid = false
        }
        for (keyNode, value) in mapping {
            guard let key = keyNode.string, keys.contains(key) else {
                bad(
                    keyNode,
                    "unknown key '\(keyNode.string ?? "?")' in an output (expected one of: \(keys.joined(separator: ", ")))"
                )
                continue
            }
            let text = value.scalar != nil && value.null == nil ? value.string : nil
            switch key {
            case "name":
                guard let text, !text.isEmpty, text.count <= 64,
                    text.unicodeScalars.allSatisfy({
                        CharacterSet.alphanumerics.contains($0) && $0.isASCII || $0 == "-" || $0 == "_" || $0 == "."
                    })
                else {
                    bad(value, "an output's name is 1 to 64 letters, digits, '-', '_' or '.'")
                    continue
                }
                name = text
            case "url":
                guard let text else {
                    bad(value, "url must be a single value")
                    continue
                }
                if let problem = urlProblem(text) {
                    bad(value, problem)
                    continue
                }
                url = text
            case "min-priority":
                guard let text, let priority = FalcoPriority(name: text) else {
                    bad(
                        value,
                        "min-priority must be a Falco priority (emergency, alert, critical, error, warning, notice, informational, debug)"
                    )
                    continue
                }
                output.minimumPriority = priority
            case "events":
                let items = value.sequence.map(Array.init) ?? [value]
                var types: Set<FleetEventType> = []
                for item in items {
                    guard let word = item.string, let type = FleetEventType(rawValue: word),
                        FleetEventType.selectable.contains(type)
                    else {
                        bad(
                            item,
                            "events lists event types: \(FleetEventType.selectable.map(\.rawValue).joined(separator: ", "))"
                        )
                        continue
                    }
                    types.insert(type)
                }
                if types.isEmpty && valid { bad(value, "events must list at least one event type") }
                output.types = types
            case "timeout":
                guard let text, let seconds = RetentionSettings.parseAge(text), seconds <= 300 else {
                    bad(value, "timeout must be a duration from 1s to 300s (e.g. 10s)")
                    continue
                }
                output.timeoutSeconds = seconds
            case "ca": output.caFile = absolute(value, "ca")
            case "certificate": output.certificateFile = absolute(value, "certificate")
            case "key": output.keyFile = absolute(value, "key")
            case "token-file": output.tokenFile = absolute(value, "token-file")
            default:
                guard case .mapping(let headers) = value else {
                    bad(value, "headers must be a mapping of header names to values")
                    continue
                }
                for (headerName, headerValue) in headers {
                    guard let field = headerName.string, Self.isToken(field),
                        let content = headerValue.string,
                        !content.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f })
                    else {
                        bad(headerName, "a header is a name (letters, digits, '-') and a value of one line")
                        continue
                    }
                    output.headers.append(Header(name: field, value: content))
                }
            }
        }
        if (output.certificateFile == nil) != (output.keyFile == nil) {
            bad(node, "an output's certificate and key go together: give both or neither")
        }
        if let url, !url.lowercased().hasPrefix("https://"),
            output.caFile != nil || output.certificateFile != nil
        {
            bad(node, "ca, certificate and key need an https:// url")
        }
        guard let name else {
            fail(node, "an output needs a name")
            return nil
        }
        guard let url else {
            fail(node, "output '\(name)' needs a url")
            return nil
        }
        guard valid else { return nil }
        output.name = name
        output.url = url
        return output
    }

    static func isToken(_ text: String) -> Bool {
        !text.isEmpty
            && text.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "-") }
    }
}

/// `outbox:`: the queue of events for the outputs, in the state directory's database.
public struct OutboxSettings: Hashable, Sendable {
    /// Events held at most. Past it the oldest are dropped, counted, and each output that had not
    /// received them is sent one notice of how many it missed.
    public var limit = 100_000

    public init(limit: Int = 100_000) { self.limit = limit }

    static func parse(_ node: Node, fail: (Node, String) -> Void) -> OutboxSettings {
        var settings = OutboxSettings()
        guard case .mapping(let mapping) = node else {
            fail(node, "outbox must be a mapping (limit)")
            return settings
        }
        for (keyNode, value) in mapping {
            guard keyNode.string == "limit" else {
                fail(keyNode, "unknown key '\(keyNode.string ?? "?")' in outbox (expected limit)")
                continue
            }
            guard let limit = value.int, (10...10_000_000).contains(limit) else {
                fail(value, "outbox.limit must be a whole number from 10 to 10000000")
                continue
            }
            settings.limit = limit
        }
        return settings
    }
}
