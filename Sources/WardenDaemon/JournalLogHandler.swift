// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Logging
import WardenLinux

/// A swift-log handler that writes to journald with structured fields: `MESSAGE`, `PRIORITY`,
/// `SYSLOG_IDENTIFIER`, `CODE_FILE`/`CODE_LINE`/`CODE_FUNC`, and each metadata key as
/// `SHMWARDEN_<KEY>` (upper-cased, `.` and `-` as `_`). Falls back to stderr for an entry the
/// journal refuses.
public struct JournalLogHandler: LogHandler {
    public var logLevel: Logger.Level = .notice
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let socket: JournalSocket
    private var fallback: StreamLogHandler

    /// Whether systemd started this process with its output going to the journal.
    public static var startedBySystemd: Bool { ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil }

    /// nil when there is no journal to write to.
    public init?(label: String) {
        guard let socket = JournalSocket() else { return nil }
        self.label = label
        self.socket = socket
        self.fallback = StreamLogHandler.standardError(label: label)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [(String, String)] = [
            ("MESSAGE", event.message.description), ("PRIORITY", String(Self.priority(event.level))),
            ("SYSLOG_IDENTIFIER", "shmwarden"), ("CODE_FILE", event.file), ("CODE_LINE", String(event.line)),
            ("CODE_FUNC", event.function), ("SHMWARDEN_LOGGER", label),
        ]
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            fields.append((Self.fieldName(key), "\(value)"))
        }
        if !socket.send(fields) { fallback.log(event: event) }
    }

    /// syslog priorities: 0 emerg … 7 debug.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// `file.path` → `SHMWARDEN_FILE_PATH`.
    static func fieldName(_ key: String) -> String {
        let body = key.uppercased().map { character -> Character in
            character.isASCII && (character.isLetter || character.isNumber) ? character : "_"
        }
        return "SHMWARDEN_" + String(body)
    }
}
