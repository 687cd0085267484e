// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import WardenCore
import WardenHTTP
import WardenLinux
import WardenResponse
import WardenSensors
import WardenYara

/// Everything `run` and `scan` take from the command line, resolved.
public struct AgentConfiguration: Sendable {
    public var stateDirectory: StateDirectory
    public var watchPaths: [String]
    public var discovery: TmpfsDiscovery
    public var hashSizeCap: Int64
    public var maxPinnedFiles: Int
    /// How often a mount the inotify watch limit left partly unwatched is rescanned.
    public var fallbackRescanIntervalMilliseconds: Int
    /// The Falco intake's HTTP listener; nil for none (`scan`, and tests of the sensor alone).
    public var http: IntakeServerConfiguration?
    /// Pair inotify with fanotify marks (the default; tests turn it off to check inotify alone).
    public var useFanotify = true
    /// How many store commands may wait for the writer; past it, intake answers 503.
    public var storeQueueCapacity = 65_536
    /// Benchmarks only: append `<monotonic ns>\t<path>` per committed file record to this file.
    public var commitLogPath: String?
    /// The validated policy the responder starts with.
    public var policy: Policy = .none
    /// How long records and evidence are kept (nil: forever).
    public var retention: RetentionSettings?
    /// The share of `fs.inotify.max_user_watches` the sensor may take.
    public var inotifyWatchShare = 0.5
    /// The exec monitor's settings (nil: off, `--no-exec-monitor`).
    public var execMonitor: ProcessCapturer.Settings? = ProcessCapturer.Settings()
    /// The state directory's disk budget (evidence, quarantine, database).
    public var storage = StorageBudget()
    /// Where every detection and action is sent (none: no outbox).
    public var outputs: [FleetOutput] = []
    public var outbox = OutboxSettings()
    /// The YARA rules' files and the bounds of a scan (no files: no scanning).
    public var yara = YaraSettings()
    /// The rules compiled from `yara.rules` at start (`loadYaraRules`); a reload recompiles them.
    public var yaraRules: YaraRuleSet?
    /// The `hostname` of every event sent (the host's name).
    public var hostname = sys_hostname()
    /// Where it came from, for SIGHUP reloads (nil: the built-in empty policy, nothing to reload).
    public var policyPath: String?

    /// Where `run` looks for policies when `--policy` is not given.
    public static let installedPolicyPath = "/etc/shmwarden/policies"

    public init(
        stateDirectory: StateDirectory, watchPaths: [String] = [], discovery: TmpfsDiscovery = .all,
        hashSizeCap: Int64 = 256 * 1024 * 1024, maxPinnedFiles: Int = 4096,
        fallbackRescanIntervalMilliseconds: Int = 5000, commitLogPath: String? = nil
    ) {
        self.fallbackRescanIntervalMilliseconds = fallbackRescanIntervalMilliseconds
        self.stateDirectory = stateDirectory
        self.watchPaths = watchPaths
        self.discovery = discovery
        self.hashSizeCap = hashSizeCap
        self.maxPinnedFiles = maxPinnedFiles
        self.commitLogPath = commitLogPath
    }

    /// The sensor's view of this configuration. The state directory is never watched, even if
    /// it sits on a tmpfs: evidence copies must not be captured as new drops.
    public var sensorConfiguration: SensorConfiguration {
        var configuration = SensorConfiguration(
            evidenceDirectory: PathBytes(stateDirectory.evidencePath),
            discovery: discovery,
            watchPaths: watchPaths.map { PathBytes(Self.absolute($0)) },
            excludedPaths: [PathBytes(stateDirectory.path)],
            hashSizeCap: hashSizeCap,
            maxPinnedFiles: maxPinnedFiles,
            fallbackRescanIntervalMilliseconds: fallbackRescanIntervalMilliseconds,
            useFanotify: useFanotify
        )
        configuration.inotifyWatchShare = inotifyWatchShare
        configuration.execMonitor = execMonitor.map { settings in
            var settings = settings
            settings.hashSizeCap = hashSizeCap
            return settings
        }
        // The exec guard, when the starting policy runs it, captures on exec instead (decided
        // at start: a reload that turns the guard off leaves close-write capture only).
        configuration.captureOnExec = policy.execGuard.mode == .off
        return configuration
    }

    /// Loads the policy at `path`, or at the installed location when `path` is nil and it exists.
    ///
    /// - Returns: the policy and the path it came from (nil for the built-in empty policy).
    /// - Throws: every error of an invalid policy.
    public static func loadPolicy(_ path: String?) throws(PolicyErrors) -> (Policy, String?) {
        let chosen = path ?? (FileManager.default.fileExists(atPath: installedPolicyPath) ? installedPolicyPath : nil)
        guard let chosen else { return (.none, nil) }
        return (try PolicyLoader.load(chosen).get(), chosen)
    }

    /// Compiles the rule files `settings` names (nil when it names none).
    ///
    /// - Throws: every compile error, with its file and line.
    public static func loadYaraRules(_ settings: YaraSettings) throws(YaraCompileErrors) -> YaraRuleSet? {
        guard !settings.rules.isEmpty else { return nil }
        return try YaraRuleSet.load(settings.rules).get()
    }

    public static func absolute(_ path: String) -> String {
        var text = path
        while text.count > 1 && text.hasSuffix("/") { text.removeLast() }
        if text.hasPrefix("/") { return text }
        return FileManager.default.currentDirectoryPath + "/" + text
    }
}
