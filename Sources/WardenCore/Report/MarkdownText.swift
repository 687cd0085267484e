// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// Text placed into Markdown so that it shows as it is: in a table cell, an inline code span,
/// or a fenced block. The reports' renderers share it.
public enum MarkdownText {
    /// Text for a table cell: pipes escaped, line breaks shown as `\n` and `\r`.
    public static func cell(_ text: String) -> String {
        text.replacingAll("|", with: "\\|").replacingAll("\n", with: "\\n").replacingAll("\r", with: "\\r")
    }

    /// An inline code span that holds any text (backticks in it get a longer fence).
    public static func code(_ text: String) -> String {
        let escaped = cell(text)
        var fence = "`"
        while escaped.contains(fence) { fence += "`" }
        let pad = escaped.hasPrefix("`") || escaped.hasSuffix("`") ? " " : ""
        return fence + pad + escaped + pad + fence
    }

    /// A fenced code block of `text`, its fence longer than any run of backticks in it.
    public static func block(_ text: String, language: String = "") -> [String] {
        var fence = "```"
        while text.contains(fence) { fence += "`" }
        return [fence + language] + [text.hasSuffix("\n") ? String(text.dropLast()) : text] + [fence]
    }
}
