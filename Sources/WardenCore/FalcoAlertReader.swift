// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// A strict JSON reader (RFC 8259) for exactly what a Falco alert holds: one object whose known
/// keys are strings, a string array (`tags`) and a flat object of scalars (`output_fields`);
/// any other key's value is checked and skipped.
///
/// It exists for speed: `JSONDecoder` with `Codable` was the largest single cost of the HTTP
/// intake (a generic container per value, a thrown error per failed type guess). The reasons it
/// gives match what `FalcoAlert.decode` said before, so the 400 bodies stay the same.
struct FalcoAlertReader {
    /// What the reader found; `nil` means absent or JSON `null`.
    struct Fields {
        var rule: String?
        var priority: String?
        var time: String?
        var source: String?
        var hostname: String?
        var output: String?
        var uuid: String?
        var tags: [String]?
        var outputFields: [String: FieldValue]?

        /// These fields, with the ones still missing taken from `other`.
        func filled(from other: Fields) -> Fields {
            Fields(
                rule: rule ?? other.rule, priority: priority ?? other.priority, time: time ?? other.time,
                source: source ?? other.source, hostname: hostname ?? other.hostname, output: output ?? other.output,
                uuid: uuid ?? other.uuid, tags: tags ?? other.tags, outputFields: outputFields ?? other.outputFields)
        }
    }

    private let bytes: UnsafeRawBufferPointer
    private var index = 0
    /// Containers may nest this deep in an unknown key's value (a bound on recursion).
    private static let depthLimit = 512

    private init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    static func read(_ bytes: UnsafeRawBufferPointer) throws(AlertDecodingError) -> Fields {
        var reader = FalcoAlertReader(bytes)
        reader.skipWhitespace()
        if reader.atEndAfterWhitespace() { throw AlertDecodingError("empty body: expected a Falco alert as JSON") }
        guard reader.peek() == UInt8(ascii: "{") else {
            // Valid JSON of another kind, or not JSON at all.
            var probe = FalcoAlertReader(bytes)
            probe.skipWhitespace()
            let isJSON = (try? probe.skipValue(depth: 0)) != nil && probe.atEndAfterWhitespace()
            if isJSON { throw AlertDecodingError("expected a JSON object") }
            throw isFalcoTextOutput(bytes) ? textOutput : malformed
        }
        let fields = try reader.readAlertObject()
        guard reader.atEndAfterWhitespace() else { throw malformed }
        return fields
    }

    private static var malformed: AlertDecodingError { AlertDecodingError("malformed JSON") }

    private static var textOutput: AlertDecodingError {
        AlertDecodingError(
            "this is Falco's text output, not JSON: set json_output: true in falco.yaml (http_output then sends "
                + "Content-Type: application/json, and program_output and file_output write JSON lines)")
    }

    /// Whether `bytes` start as a line of Falco's text output does: `HH:MM:SS.nnnnnnnnn: <Priority> `
    /// (json_output: false; its http_output then sends it as text/plain, and nothing tells the
    /// user that the receiver refused it).
    static func isFalcoTextOutput(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let prefix = Array(bytes.prefix(48))
        let digits: Set<Int> = [0, 1, 3, 4, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17]
        let (colon, dot) = (UInt8(ascii: ":"), UInt8(ascii: "."))
        let separators: [Int: UInt8] = [2: colon, 5: colon, 8: dot, 18: colon]
        guard prefix.count > 20 else { return false }
        for index in 0..<19 {
            let byte = prefix[index]
            let expected: Bool =
                digits.contains(index)
                ? (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                : byte == separators[index]
            if !expected { return false }
        }
        let rest = String(decoding: prefix.dropFirst(19), as: UTF8.self)
        return ["Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Info", "Debug"]
            .contains { rest.hasPrefix(" \($0) ") }
    }

    // MARK: - The alert

    /// Keys are matched as Go's `encoding/json` matches them, which is how Falcosidekick and
    /// Falco Talon read alerts (and what hand-written payloads such as Talon's own `"Rule"`
    /// example rely on): the exact key first, else the key in any case.
    private mutating func readAlertObject() throws(AlertDecodingError) -> Fields {
        var exact = Fields()
        var folded = Fields()
        guard enterContainer(closing: UInt8(ascii: "}")) else { return exact }
        while true {
            skipWhitespace()
            let key = try readString()
            try expectColon()
            if try !readKnownValue(key, as: key, into: &exact) {
                let lowercased = key.lowercased()
                var known = false
                if lowercased != key { known = try readKnownValue(lowercased, as: key, into: &folded) }
                if !known { try skipValue(depth: 1) }
            }
            if try endOfContainer(closing: UInt8(ascii: "}")) { return exact.filled(from: folded) }
        }
    }

    /// Reads the value of the known key `name` into `fields` (errors name the key as `written`);
    /// `false`, reading nothing, for any other key.
    private mutating func readKnownValue(
        _ name: String, as written: String, into fields: inout Fields
    ) throws(AlertDecodingError) -> Bool {
        switch name {
        case "rule": fields.rule = try readOptionalString(written)
        case "priority": fields.priority = try readOptionalString(written)
        case "time": fields.time = try readOptionalString(written)
        case "source": fields.source = try readOptionalString(written)
        case "hostname": fields.hostname = try readOptionalString(written)
        case "output": fields.output = try readOptionalString(written)
        case "uuid": fields.uuid = try readOptionalString(written)
        case "tags": fields.tags = try readTags()
        case "output_fields": fields.outputFields = try readOutputFields()
        default: return false
        }
        return true
    }

    private mutating func readOptionalString(_ key: String) throws(AlertDecodingError) -> String? {
        switch peek() {
        case UInt8(ascii: "\""): return try readString()
        case UInt8(ascii: "n"):
            try readLiteral("null")
            return nil
        default:
            try skipValue(depth: 1)  // malformed JSON first, wrong type second
            throw AlertDecodingError("wrong type for \"\(key)\": expected a string")
        }
    }

    private mutating func readTags() throws(AlertDecodingError) -> [String]? {
        guard
            let hasMembers = try openContainer(
                "[", "]", wrongType: "wrong type for \"tags\": expected an array of strings")
        else { return nil }
        var tags: [String] = []
        guard hasMembers else { return tags }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else {
                try skipValue(depth: 2)
                throw AlertDecodingError("wrong type for \"tags.[\(tags.count)]\": expected a string")
            }
            tags.append(try readString())
            if try endOfContainer(closing: UInt8(ascii: "]")) { return tags }
        }
    }

    private mutating func readOutputFields() throws(AlertDecodingError) -> [String: FieldValue]? {
        guard
            let hasMembers = try openContainer(
                "{", "}", wrongType: "wrong type for \"output_fields\": expected an object")
        else { return nil }
        guard hasMembers else { return [:] }
        // Pairs first, then a dictionary of the right size: filled as they came, a dictionary
        // of Falco's 20 to 40 fields was rehashed five times over.
        var pairs: [(key: String, value: FieldValue)] = []
        pairs.reserveCapacity(32)
        while true {
            skipWhitespace()
            let key = try readString()
            try expectColon()
            pairs.append((key, try readScalar(key)))
            if try endOfContainer(closing: UInt8(ascii: "}")) { break }
        }
        var values = [String: FieldValue](minimumCapacity: pairs.count)
        for (key, value) in pairs { values[key] = value }  // a repeated key: the last one wins
        return values
    }

    /// A key's array or object: nil for JSON null, false when empty (consumed), true when
    /// members follow; any other value is the wrong type.
    private mutating func openContainer(_ open: Unicode.Scalar, _ close: Unicode.Scalar, wrongType: String)
        throws(AlertDecodingError) -> Bool?
    {
        if peek() == UInt8(ascii: "n") {
            try readLiteral("null")
            return nil
        }
        guard peek() == UInt8(ascii: open) else {
            try skipValue(depth: 1)  // malformed JSON first, wrong type second
            throw AlertDecodingError(wrongType)
        }
        return enterContainer(closing: UInt8(ascii: close))
    }

    /// Steps past an opening bracket: false when the container is empty (its closing bracket
    /// consumed too), true when members follow.
    private mutating func enterContainer(closing: UInt8) -> Bool {
        index += 1
        skipWhitespace()
        guard peek() == closing else { return true }
        index += 1
        return false
    }

    private mutating func readScalar(_ key: String) throws(AlertDecodingError) -> FieldValue {
        switch peek() ?? 0 {
        case UInt8(ascii: "\""): return .string(try readString())
        case UInt8(ascii: "t"):
            try readLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try readLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try readLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try readNumber()
        default:
            try skipValue(depth: 2)
            throw AlertDecodingError(
                "invalid \"output_fields.\(key)\": output_fields values must be strings, numbers, booleans or null")
        }
    }

    // MARK: - JSON grammar

    private func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    private mutating func atEndAfterWhitespace() -> Bool {
        skipWhitespace()
        return index == bytes.count
    }

    private mutating func expectColon() throws(AlertDecodingError) {
        skipWhitespace()
        guard peek() == UInt8(ascii: ":") else { throw Self.malformed }
        index += 1
        skipWhitespace()
    }

    /// After a member: `,` (more follow) or the closing bracket (true).
    private mutating func endOfContainer(closing: UInt8) throws(AlertDecodingError) -> Bool {
        skipWhitespace()
        switch peek() {
        case UInt8(ascii: ","):
            index += 1
            return false
        case closing:
            index += 1
            return true
        default: throw Self.malformed
        }
    }

    private mutating func readLiteral(_ literal: StaticString) throws(AlertDecodingError) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw Self.malformed }
        for offset in 0..<count where bytes[index + offset] != literal.utf8Start[offset] { throw Self.malformed }
        index += count
    }

    /// A string, unescaped; invalid UTF-8, raw control characters and bad escapes are malformed.
    private mutating func readString() throws(AlertDecodingError) -> String {
        guard peek() == UInt8(ascii: "\"") else { throw Self.malformed }
        index += 1
        let start = index
        // Fast path: no escapes, the bytes are the string. ASCII needs no validation (and
        // `String(validating:as:)` is generic code that looks up type metadata on every call).
        var ascii = true
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<index]).bindMemory(to: UInt8.self)
                index += 1
                if ascii { return String(decoding: slice, as: UTF8.self) }
                guard let text = String(validating: slice, as: UTF8.self) else { throw Self.malformed }
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw Self.malformed }
            if byte >= 0x80 { ascii = false }
            index += 1
        }
        guard index < bytes.count else { throw Self.malformed }
        var out = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: out, as: UTF8.self) else { throw Self.malformed }
                return text
            case UInt8(ascii: "\\"):
                try readEscape(into: &out)
            case 0..<0x20: throw Self.malformed
            default: out.append(byte)
            }
        }
        throw Self.malformed
    }

    private mutating func readEscape(into out: inout [UInt8]) throws(AlertDecodingError) {
        guard let byte = peek() else { throw Self.malformed }
        index += 1
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(byte)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try readHex4()
            if (0xD800..<0xDC00).contains(scalar) {
                // A high surrogate must be followed by an escaped low one.
                guard peek() == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u")
                else { throw Self.malformed }
                index += 2
                let low = try readHex4()
                guard (0xDC00..<0xE000).contains(low) else { throw Self.malformed }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00..<0xE000).contains(scalar) {
                throw Self.malformed
            }
            guard let unicode = Unicode.Scalar(scalar) else { throw Self.malformed }
            out.append(contentsOf: Array(String(Character(unicode)).utf8))
        default: throw Self.malformed
        }
    }

    private mutating func readHex4() throws(AlertDecodingError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw Self.malformed }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            index += 1
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw Self.malformed
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// A number: exact as Int64, else as UInt64 (Falco's inode numbers), else a Double.
    private mutating func readNumber() throws(AlertDecodingError) -> FieldValue {
        let start = index
        let negative = peek() == UInt8(ascii: "-")
        if negative { index += 1 }
        guard let first = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { throw Self.malformed }
        if first == UInt8(ascii: "0") {
            index += 1
        } else {
            skipDigits()
        }
        var integral = true
        if peek() == UInt8(ascii: ".") {
            integral = false
            index += 1
            guard skipDigits() > 0 else { throw Self.malformed }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            integral = false
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard skipDigits() > 0 else { throw Self.malformed }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        if integral {
            if let value = Int64(text) { return .integer(value) }
            if !negative, let value = UInt64(text) { return .unsigned(value) }
        }
        guard let value = Double(text) else { throw Self.malformed }
        return .double(value)
    }

    @discardableResult
    private mutating func skipDigits() -> Int {
        let start = index
        while let byte = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { index += 1 }
        return index - start
    }

    /// Checks and skips any JSON value.
    private mutating func skipValue(depth: Int) throws(AlertDecodingError) {
        guard depth < Self.depthLimit else { throw Self.malformed }
        skipWhitespace()
        switch peek() ?? 0 {
        case UInt8(ascii: "\""): _ = try readString()
        case UInt8(ascii: "t"): try readLiteral("true")
        case UInt8(ascii: "f"): try readLiteral("false")
        case UInt8(ascii: "n"): try readLiteral("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): _ = try readNumber()
        case UInt8(ascii: "["):
            guard enterContainer(closing: UInt8(ascii: "]")) else { return }
            repeat { try skipValue(depth: depth + 1) } while try !endOfContainer(closing: UInt8(ascii: "]"))
        case UInt8(ascii: "{"):
            guard enterContainer(closing: UInt8(ascii: "}")) else { return }
            repeat {
                skipWhitespace()
                _ = try readString()
                try expectColon()
                try skipValue(depth: depth + 1)
            } while try !endOfContainer(closing: UInt8(ascii: "}"))
        default: throw Self.malformed
        }
    }
}
