// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import Logging
import WardenCore
import WardenDaemon
import WardenLinux
import WardenSensors

/// Options every state-touching command takes, and the configuration file they fall back to.
struct StateOptions: ParsableArguments {
    @Option(
        name: .customLong("state-dir"),
        help: """
            State directory (database, evidence, quarantine). Default: $SHMWARDEN_STATE_DIR, else \
            state-dir in the configuration file, else /var/lib/shmwarden.
            """)
    var stateDirectory: String?

    @Option(
        help: "Configuration file (default: /etc/shmwarden/shmwarden.yaml when it exists). Flags win over it.")
    var config: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (default: notice).")
    var logLevel: String?

    /// The same three values without ArgumentParser's property wrappers.
    var settings: StateSettings { StateSettings(stateDirectory: stateDirectory, config: config, logLevel: logLevel) }

    func validate() throws { try settings.validate() }
    func configFile() throws -> ConfigFile { try settings.configFile() }
    var state: StateDirectory { settings.state }
    func makeLogger() -> Logger { settings.makeLogger() }
}

/// `StateOptions`' values and what they decide, as a plain value: `sandbox`'s own argument
/// reading builds one without initializing ArgumentParser's wrappers, whose first-time
/// protocol conformance lookups each scan the binary's conformance records.
struct StateSettings {
    var stateDirectory: String?
    var config: String?
    var logLevel: String?

    func validate() throws {
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        _ = try configFile()
    }

    /// The configuration file's settings: `--config` (which must exist), else the default path
    /// when it exists, else none. An invalid file is bad input (exit 2), reported with its lines.
    func configFile() throws -> ConfigFile {
        let path =
            config ?? (FileManager.default.fileExists(atPath: ConfigFile.defaultPath) ? ConfigFile.defaultPath : nil)
        guard let path else { return ConfigFile() }
        guard let bytes = try? sys_readFile(Array(path.utf8), followingSymlinks: true) else {
            throw ValidationError("--config: cannot read '\(path)'")
        }
        switch ConfigFile.parse(String(decoding: bytes, as: UTF8.self), file: path) {
        case .success(let file): return file
        case .failure(let errors): throw ValidationError("invalid configuration:\n\(errors)")
        }
    }

    var state: StateDirectory {
        // getenv, not ProcessInfo's environment: that builds a dictionary of every variable.
        let fromEnvironment = getenv("SHMWARDEN_STATE_DIR").map { String(cString: $0) }
        let fromConfig = fromEnvironment == nil ? (try? configFile())?.stateDirectory : nil
        return StateDirectory(
            flag: stateDirectory ?? fromConfig, environment: fromEnvironment.map { ["SHMWARDEN_STATE_DIR": $0] } ?? [:])
    }

    /// A logger at the chosen level: journald's native protocol (structured fields) when
    /// systemd started us or `log-format: journal`, else text on stderr.
    func makeLogger() -> Logger {
        let file = (try? configFile()) ?? ConfigFile()
        let level = Logger.Level(rawValue: logLevel ?? file.logLevel ?? "notice") ?? .notice
        let journal = file.logFormat.map { $0 == "journal" } ?? JournalLogHandler.startedBySystemd
        LoggingSystem.bootstrap { label in
            if journal, var handler = JournalLogHandler(label: label) {
                handler.logLevel = level
                return handler
            }
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

    @Option(help: "Record larger files as tooLarge instead of hashing them (bytes; K, M, G suffixes; default 256M).")
    var hashSizeCap: String?

    @Option(help: "How many files may be held open between create and close-write (default 4096).")
    var maxPinnedFiles: Int?

    func validate() throws {
        if let hashSizeCap, ByteSizeText.parse(hashSizeCap) == nil {
            throw ValidationError("--hash-size-cap: '\(hashSizeCap)' is not a size (e.g. 268435456, 512K, 256M, 1G)")
        }
        if let maxPinnedFiles, maxPinnedFiles < 1 { throw ValidationError("--max-pinned-files must be at least 1") }
    }

    /// The sensor's settings: flags, else the configuration file, else the defaults.
    func configuration(state: StateDirectory, file: ConfigFile, commitLog: String? = nil) throws -> AgentConfiguration {
        let watch = watchPaths.isEmpty ? (file.watch ?? []) : watchPaths
        let discover = noDiscover ? false : (file.discover ?? true)
        if !discover && watch.isEmpty {
            throw ValidationError("--no-discover needs at least one --watch PATH: there would be nothing to watch")
        }
        return AgentConfiguration(
            stateDirectory: state, watchPaths: watch, discovery: discover ? .all : .none,
            hashSizeCap: ByteSizeText.parse(hashSizeCap ?? file.hashSizeCap ?? "256M") ?? 256 << 20,
            maxPinnedFiles: maxPinnedFiles ?? file.maxPinnedFiles ?? 4096, commitLogPath: commitLog)
    }
}
