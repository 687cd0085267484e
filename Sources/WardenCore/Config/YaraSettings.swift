// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Yams

/// `yara:`: the rules every capture is scanned with, and the bounds of one scan.
public struct YaraSettings: Hashable, Sendable {
    /// Rule files, and directories whose `*.yar` and `*.yara` files are taken (not recursively),
    /// absolute paths. None: no YARA scanning.
    public var rules: [String] = []
    /// Bytes of one file scanned at most: the rest of a larger one is not read (its verdict says
    /// `truncated`, with the matches in what was scanned).
    public var maxFileSize: Int64 = 64 << 20
    /// Seconds one scan may take (libyara counts whole seconds).
    public var timeoutSeconds = 10
    /// Threads scanning captures.
    public var threads = 1

    public init(rules: [String] = []) { self.rules = rules }

    static func parse(_ node: Node, fail: (Node, String) -> Void) -> YaraSettings {
        var settings = YaraSettings()
        guard case .mapping(let mapping) = node else {
            fail(node, "yara must be a mapping (rules, max-file-size, timeout, threads)")
            return settings
        }
        for (keyNode, value) in mapping {
            switch keyNode.string {
            case "rules":
                let items = value.sequence.map(Array.init) ?? [value]
                for item in items {
                    guard let path = item.string, path.hasPrefix("/") else {
                        fail(item, "yara.rules takes absolute paths of rule files or directories")
                        continue
                    }
                    settings.rules.append(path)
                }
            case "max-file-size":
                guard let text = value.string, let bytes = ByteSizeText.parse(text), bytes > 0 else {
                    fail(value, "yara.max-file-size must be a size (e.g. 64M)")
                    continue
                }
                settings.maxFileSize = bytes
            case "timeout":
                guard let text = value.string, let milliseconds = GuardPolicy.parseMilliseconds(text),
                    milliseconds >= 1000, milliseconds <= 600_000, milliseconds % 1000 == 0
                else {
                    fail(value, "yara.timeout must be whole seconds from 1s to 600s (e.g. 10s)")
                    continue
                }
                settings.timeoutSeconds = milliseconds / 1000
            case "threads":
                guard let threads = value.int, (1...16).contains(threads) else {
                    fail(value, "yara.threads must be a whole number from 1 to 16")
                    continue
                }
                settings.threads = threads
            default:
                fail(
                    keyNode,
                    "unknown key '\(keyNode.string ?? "?")' in yara (expected rules, max-file-size, timeout, threads)")
            }
        }
        return settings
    }
}
