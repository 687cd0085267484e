// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation

/// A Linux path as the exact bytes the kernel gave us.
///
/// Paths on Linux are byte strings: a dropper may name its file with invalid UTF-8 or a newline.
/// `PathBytes` keeps every byte, and offers a display form for people and a base64 form for
/// machines, so nothing is lost in either direction (DESIGN.md, "Paths are bytes on Linux").
public struct PathBytes: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The raw bytes, without a trailing NUL.
    public var bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public init(_ string: String) { self.bytes = Array(string.utf8) }

    /// The path as a `String` when its bytes are valid UTF-8; `nil` otherwise.
    public var utf8String: String? { String(validating: bytes, as: UTF8.self) }

    /// A form for logs and tables: valid UTF-8 as it is, with control bytes and invalid
    /// sequences escaped as `\xNN`, so one path is always one line.
    public var displayString: String {
        if let text = utf8String, !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            return text
        }
        var out = ""
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte >= 0x20 && byte < 0x7f {
                out.unicodeScalars.append(Unicode.Scalar(byte))
                index += 1
                continue
            }
            if byte >= 0x80, let (scalar, length) = Self.decodeScalar(bytes, at: index) {
                out.unicodeScalars.append(scalar)
                index += length
                continue
            }
            out += String(format: "\\x%02x", byte)
            index += 1
        }
        return out
    }

    /// The form JSON carries as `path`: the exact text when the bytes are valid UTF-8 (a newline
    /// stays a newline, JSON escapes it), the display form otherwise, beside `pathBase64`. Escaping
    /// for display belongs to the human tables only: JSON readers must tell `a<LF>b` from `a\x0ab`.
    public var jsonText: String { utf8String ?? displayString }

    /// The exact bytes in base64, for JSON consumers that must round-trip the path.
    public var base64: String { Data(bytes).base64EncodedString() }

    /// The path whose exact bytes `base64` holds; nil when it is not base64.
    public init?(base64: String) {
        guard let data = Data(base64Encoded: base64) else { return nil }
        self.bytes = Array(data)
    }

    /// `true` when the bytes are valid UTF-8 (JSON can then carry them as text without loss).
    public var isValidUTF8: Bool { utf8String != nil }

    public var description: String { displayString }

    public static func < (lhs: PathBytes, rhs: PathBytes) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    /// Appends one path component, inserting a `/` unless the path already ends with one.
    public func appending(_ component: [UInt8]) -> PathBytes {
        var result = bytes
        if result.last != UInt8(ascii: "/") { result.append(UInt8(ascii: "/")) }
        result.append(contentsOf: component)
        return PathBytes(result)
    }

    /// `true` when `self` is `prefix` or lies below it (component-wise, not byte-wise).
    public func isWithin(_ prefix: PathBytes) -> Bool {
        if prefix.bytes == [UInt8(ascii: "/")] { return bytes.first == UInt8(ascii: "/") }
        guard bytes.starts(with: prefix.bytes) else { return false }
        return bytes.count == prefix.bytes.count || bytes[prefix.bytes.count] == UInt8(ascii: "/")
    }

    /// Decodes one multi-byte UTF-8 scalar at `index`, or returns nil when the bytes there are not
    /// a valid sequence.
    private static func decodeScalar(_ bytes: [UInt8], at index: Int) -> (Unicode.Scalar, Int)? {
        let lead = bytes[index]
        let length: Int
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0...0xEF: length = 3
        case 0xF0...0xF4: length = 4
        default: return nil
        }
        guard index + length <= bytes.count else { return nil }
        guard let text = String(validating: bytes[index..<(index + length)], as: UTF8.self),
            let scalar = text.unicodeScalars.first, text.unicodeScalars.count == 1
        else { return nil }
        return (scalar, length)
    }
}
