// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// Quotes path bytes for a POSIX shell so that a pasted command names exactly that path.
public enum ShellQuote {
    /// `'…'` with embedded `'` written as `'\''`; bytes that are not printable ASCII (newlines,
    /// control bytes, non-UTF-8) make it a bash `$'…'` string with `\xNN` escapes instead, so the
    /// command stays on one line and round-trips byte for byte.
    public static func quote(_ path: PathBytes) -> String {
        let bytes = path.bytes
        if !bytes.isEmpty, bytes.allSatisfy(isPlainWordByte) { return String(decoding: bytes, as: UTF8.self) }
        if bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) {
            return "'" + String(decoding: bytes, as: UTF8.self).replacingAll("'", with: "'\\''") + "'"
        }
        var out = "$'"
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "'"): out += "\\'"
            case UInt8(ascii: "\\"): out += "\\\\"
            case 0x20..<0x7f: out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16)
                out += "\\x" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out + "'"
    }

    public static func quote(_ text: String) -> String { quote(PathBytes(text)) }

    /// Bytes that need no quoting at all.
    private static func isPlainWordByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "/"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "+"),
            UInt8(ascii: ":"), UInt8(ascii: ","), UInt8(ascii: "@"), UInt8(ascii: "%"), UInt8(ascii: "="):
            true
        default: false
        }
    }
}
