// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// Text from a sample or an alert made safe to print on an analyst's terminal.
///
/// A sample's output, the host names it looks up and the command lines Falco reports are the
/// attacker's text: an escape sequence in them would retitle the window, clear the screen, hide
/// lines or write the clipboard (OSC 52) when a report is read in a terminal. Control
/// characters are shown as `\xNN` (C0 and DEL) or `\u{NN}` (C1) instead; everything else,
/// non-ASCII text included, is left as it is. JSON output needs none of this: JSON escapes
/// control characters itself.
public enum TerminalText {
    /// `text` with its control characters escaped; newlines and tabs are kept when
    /// `keepingLineBreaks` (multi-line output), and escaped too otherwise (one line per item).
    public static func escaped(_ text: String, keepingLineBreaks: Bool) -> String {
        func isControl(_ scalar: Unicode.Scalar) -> Bool {
            if keepingLineBreaks && (scalar == "\n" || scalar == "\t") { return false }
            return scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value)
        }
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            guard isControl(scalar) else {
                out.append(scalar)
                continue
            }
            let hex = String(scalar.value, radix: 16)
            let padded = hex.count == 1 ? "0" + hex : hex
            out.append(contentsOf: (scalar.value < 0x80 ? "\\x\(padded)" : "\\u{\(padded)}").unicodeScalars)
        }
        return String(out)
    }
}
