// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// A shell-style glob over path bytes: `*` (any run of bytes but `/`), `**` (any run, `/` too),
/// `?` (one byte but `/`), `[abc]`, `[a-z]`, `[!x]`, and `\` to escape.
///
/// Pure and byte-exact, so it matches non-UTF-8 names the same way `fnmatch(FNM_PATHNAME)` would.
public struct PathGlob: Hashable, Sendable, CustomStringConvertible {
    public let pattern: [UInt8]
    /// The pattern compiled once: matching runs these as an automaton, one pass over the path
    /// with a set of positions (no backtracking), so it takes time linear in the path's length
    /// times the pattern's, whatever the path's sender chose: a path is matched while an exec
    /// waits.
    private let tokens: [Token]

    public init(_ pattern: String) {
        self.pattern = Array(pattern.utf8)
        self.tokens = Self.compile(self.pattern)
    }

    public static func == (lhs: PathGlob, rhs: PathGlob) -> Bool { lhs.pattern == rhs.pattern }
    public func hash(into hasher: inout Hasher) { hasher.combine(pattern) }

    public var description: String { String(decoding: pattern, as: UTF8.self) }

    /// `true` when the pattern has any glob syntax (otherwise it can only match itself).
    public var hasWildcards: Bool {
        pattern.contains { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "[") }
    }

    enum Token: Sendable {
        case byte(UInt8)
        /// `?`: one byte but `/`.
        case one
        /// `[...]`: one byte but `/`, in the set (or not in it, negated).
        case set([Bool], negated: Bool)
        /// `*`: any run of bytes but `/`.
        case run
        /// `**`: any run of bytes.
        case anything
    }

    private static let slash = UInt8(ascii: "/")

    static func compile(_ pattern: [UInt8]) -> [Token] {
        var tokens: [Token] = []
        var p = 0
        while p < pattern.count {
            let c = pattern[p]
            switch c {
            case UInt8(ascii: "*"):
                let double = p + 1 < pattern.count && pattern[p + 1] == UInt8(ascii: "*")
                p += double ? 2 : 1
                // Consecutive stars say no more than one: `***` is `**`.
                while p < pattern.count, pattern[p] == UInt8(ascii: "*") { p += 1 }
                switch (tokens.last, double) {
                case (.anything?, _): continue
                case (.run?, true): tokens[tokens.count - 1] = .anything
                case (.run?, false): continue
                default: tokens.append(double ? .anything : .run)
                }
            case UInt8(ascii: "?"):
                tokens.append(.one)
                p += 1
            case UInt8(ascii: "["):
                if let (set, negated, next) = compileClass(pattern, p + 1) {
                    tokens.append(.set(set, negated: negated))
                    p = next
                } else {
                    // An unterminated class matches a literal "[".
                    tokens.append(.byte(c))
                    p += 1
                }
            case UInt8(ascii: "\\") where p + 1 < pattern.count:
                tokens.append(.byte(pattern[p + 1]))
                p += 2
            default:
                tokens.append(.byte(c))
                p += 1
            }
        }
        return tokens
    }

    private static func compileClass(_ pattern: [UInt8], _ start: Int) -> ([Bool], Bool, Int)? {
        var i = start
        var negated = false
        if i < pattern.count, pattern[i] == UInt8(ascii: "!") || pattern[i] == UInt8(ascii: "^") {
            negated = true
            i += 1
        }
        let first = i
        if i < pattern.count, pattern[i] == UInt8(ascii: "]") { i += 1 }
        while i < pattern.count, pattern[i] != UInt8(ascii: "]") { i += 1 }
        guard i < pattern.count else { return nil }
        let end = i
        var set = [Bool](repeating: false, count: 256)
        var j = first
        while j < end {
            let low = pattern[j]
            if j + 2 < end, pattern[j + 1] == UInt8(ascii: "-") {
                if low <= pattern[j + 2] { for byte in low...pattern[j + 2] { set[Int(byte)] = true } }
                j += 3
            } else {
                set[Int(low)] = true
                j += 1
            }
        }
        return (set, negated, end + 1)
    }

    public func matches(_ path: PathBytes) -> Bool {
        let count = tokens.count
        var current = [Bool](repeating: false, count: count + 1)
        var next = current
        func enter(_ state: Int, _ set: inout [Bool]) {
            var state = state
            // A run may be empty: being before it is also being after it.
            while state <= count, !set[state] {
                set[state] = true
                guard state < count else { return }
                switch tokens[state] {
                case .run, .anything: state += 1
                default: return
                }
            }
        }
        enter(0, &current)
        for byte in path.bytes {
            for index in next.indices { next[index] = false }
            var any = false
            for state in 0..<count where current[state] {
                switch tokens[state] {
                case .byte(let expected):
                    if byte == expected { enter(state + 1, &next); any = true }
                case .one:
                    if byte != Self.slash { enter(state + 1, &next); any = true }
                case .set(let set, let negated):
                    if byte != Self.slash && set[Int(byte)] != negated { enter(state + 1, &next); any = true }
                case .run:
                    if byte != Self.slash { enter(state, &next); any = true }
                case .anything:
                    enter(state, &next)
                    any = true
                }
            }
            guard any else { return false }
            swap(&current, &next)
        }
        return current[count]
    }
}
