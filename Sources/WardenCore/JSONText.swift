// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// JSON text written by hand, where a Codable encoder would cost more than the work around it (the
/// intake's answers, the fleet's events).
public enum JSONText {
    public static func appendString(_ text: String, to out: inout String) {
        out += "\""
        out += escaped(text)
        out += "\""
    }

    /// `text` escaped for the inside of a JSON string.
    public static func escaped(_ text: String) -> String {
        // Most text (ids, hashes, paths) needs no escaping: returned as it is, without a walk
        // over its scalars.
        if !text.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            return text
        }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    public static func append(_ value: FieldValue, to out: inout String) {
        switch value {
        case .string(let text): appendString(text, to: &out)
        case .integer(let number): out += String(number)
        case .unsigned(let number): out += String(number)
        // JSON has no NaN or infinity: those are written as null, as Falco would.
        case .double(let number): out += number.isFinite ? String(number) : "null"
        case .bool(let flag): out += flag ? "true" : "false"
        case .null: out += "null"
        }
    }
}
