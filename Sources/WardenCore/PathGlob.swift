// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// A shell-style glob over path bytes: `*` (any run of bytes but `/`), `**` (any run, `/` too),
/// `?` (one byte but `/`), `[abc]`, `[a-z]`, `[!x]`, and `\` to escape.
///
/// Pure and byte-exact, so it matches non-UTF-8 names the same way `fnmatch(FNM_PATHNAME)` would.
public struct PathGlob: Hashable, Sendable, CustomStringConvertible {
    public let pattern: [UInt8]

    public init(_ pattern: String) { self.pattern = Array(pattern.utf8) }

    public var description: String { String(decoding: pattern, as: UTF8.self) }

    /// `true` when the pattern has any glob syntax (otherwise it can only match itself).
    public var hasWildcards: Bool {
        pattern.contains { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "[") }
    }

    public func matches(_ path: PathBytes) -> Bool {
        Self.match(pattern[...], path.bytes[...])
    }

    private static let slash = UInt8(ascii: "/")

    private static func match(_ pattern: ArraySlice<UInt8>, _ text: ArraySlice<UInt8>) -> Bool {
        var p = pattern.startIndex
        var t = text.startIndex
        while p < pattern.endIndex {
            let c = pattern[p]
            switch c {
            case UInt8(ascii: "*"):
                let doubleStar = p + 1 < pattern.endIndex && pattern[p + 1] == UInt8(ascii: "*")
                let rest = pattern[(p + (doubleStar ? 2 : 1))...]
                var k = t
                while true {
                    if match(rest, text[k...]) { return true }
                    guard k < text.endIndex, doubleStar || text[k] != slash else { return false }
                    k += 1
                }
            case UInt8(ascii: "?"):
                guard t < text.endIndex, text[t] != slash else { return false }
                p += 1
                t += 1
            case UInt8(ascii: "["):
                guard t < text.endIndex, text[t] != slash,
                    let (matched, next) = matchClass(pattern, p + 1, text[t])
                else {
                    // An unterminated class matches a literal "[".
                    if t < text.endIndex, text[t] == c, classEnd(pattern, p + 1) == nil {
                        p += 1
                        t += 1
                        continue
                    }
                    return false
                }
                guard matched else { return false }
                p = next
                t += 1
            case UInt8(ascii: "\\") where p + 1 < pattern.endIndex:
                guard t < text.endIndex, text[t] == pattern[p + 1] else { return false }
                p += 2
                t += 1
            default:
                guard t < text.endIndex, text[t] == c else { return false }
                p += 1
                t += 1
            }
        }
        return t == text.endIndex
    }

    private static func classEnd(_ pattern: ArraySlice<UInt8>, _ start: Int) -> Int? {
        var i = start
        if i < pattern.endIndex, pattern[i] == UInt8(ascii: "!") || pattern[i] == UInt8(ascii: "^") { i += 1 }
        if i < pattern.endIndex, pattern[i] == UInt8(ascii: "]") { i += 1 }
        while i < pattern.endIndex {
            if pattern[i] == UInt8(ascii: "]") { return i }
            i += 1
        }
        return nil
    }

    private static func matchClass(_ pattern: ArraySlice<UInt8>, _ start: Int, _ byte: UInt8) -> (Bool, Int)? {
        guard let end = classEnd(pattern, start) else { return nil }
        var i = start
        var negate = false
        if pattern[i] == UInt8(ascii: "!") || pattern[i] == UInt8(ascii: "^") {
            negate = true
            i += 1
        }
        var found = false
        while i < end {
            let low = pattern[i]
            if i + 2 < end, pattern[i + 1] == UInt8(ascii: "-") {
                if low <= byte && byte <= pattern[i + 2] { found = true }
                i += 3
            } else {
                if low == byte { found = true }
                i += 1
            }
        }
        return (found != negate, end + 1)
    }
}
