// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import Logging
import WardenDaemon
import WardenSensors

/// Options every state-touching command takes.
struct StateOptions: ParsableArguments {
    @Option(
        name: .customLong("state-dir"),
        help: "State directory (database, evidence). Default: $SHMWARDEN_STATE_DIR or /var/lib/shmwarden.")
    var stateDirectory: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "notice"

    var state: StateDirectory { StateDirectory(flag: stateDirectory) }

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    /// A stderr logger at the chosen level (the daemon's only logging bootstrap).
    func makeLogger() -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .notice
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "shmwarden")
        logger.logLevel = level
        return logger
    }
}

/// Options that choose what the sensor watches.
struct WatchOptions: ParsableArguments {
    @Option(name: .customLong("watch"), help: "Also watch this directory (repeatable).")
    var watchPaths: [String] = []

    @Flag(name: .customLong("no-discover"), help: "Do not watch tmpfs mounts found in /proc/self/mountinfo.")
    var noDiscover = false

    @Option(help: "Record larger files as tooLarge instead of hashing them (bytes; K, M, G suffixes).")
    var hashSizeCap: String = "256M"

    @Option(help: "How many files may be held open between create and close-write.")
    var maxPinnedFiles: Int = 4096

    func validate() throws {
        if noDiscover && watchPaths.isEmpty {
            throw ValidationError("--no-discover needs at least one --watch PATH: there would be nothing to watch")
        }
        guard ByteSize.parse(hashSizeCap) != nil else {
            throw ValidationError("--hash-size-cap: '\(hashSizeCap)' is not a size (e.g. 268435456, 512K, 256M, 1G)")
        }
        guard maxPinnedFiles > 0 else { throw ValidationError("--max-pinned-files must be at least 1") }
    }

    func configuration(state: StateDirectory, commitLog: String? = nil) -> AgentConfiguration {
        AgentConfiguration(
            stateDirectory: state, watchPaths: watchPaths, discovery: noDiscover ? .none : .all,
            hashSizeCap: ByteSize.parse(hashSizeCap) ?? 256 << 20, maxPinnedFiles: maxPinnedFiles,
            commitLogPath: commitLog)
    }
}

/// Sizes such as `4096`, `512K`, `256M`, `1G` (powers of 1024).
enum ByteSize {
    static func parse(_ text: String) -> Int64? {
        let upper = text.uppercased()
        let multipliers: [Character: Int64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        if let last = upper.last, let multiplier = multipliers[last] {
            guard let value = Int64(upper.dropLast()), value >= 0 else { return nil }
            return value.multipliedReportingOverflow(by: multiplier).overflow ? nil : value * multiplier
        }
        guard let value = Int64(upper), value >= 0 else { return nil }
        return value
    }
}
