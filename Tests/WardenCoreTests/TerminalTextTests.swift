// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Testing
import WardenCore

/// An attacker's escape sequences never reach the analyst's terminal as sequences.
struct TerminalTextTests {
    @Test func controlCharactersAreShownNotSent() {
        let title = "\u{1B}]0;PWNED\u{07}\u{1B}[2Jred\u{7F}\u{9B}31m"
        #expect(TerminalText.escaped(title, keepingLineBreaks: true) == #"\x1b]0;PWNED\x07\x1b[2Jred\x7f\u{9b}31m"#)
        #expect(TerminalText.escaped("a\tb\nc\r", keepingLineBreaks: true) == "a\tb\nc\\x0d")
        #expect(TerminalText.escaped("a\tb\nc", keepingLineBreaks: false) == #"a\x09b\x0ac"#)
        // Text without control characters, non-ASCII included, is untouched.
        #expect(TerminalText.escaped("évil ×3 名前", keepingLineBreaks: false) == "évil ×3 名前")
    }
}
