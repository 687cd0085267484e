// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import WardenCore
import WardenStore

/// Which tmpfs mounts the sensor finds on its own in `/proc/self/mountinfo`.
public enum TmpfsDiscovery: Hashable, Sendable {
    /// None: only the explicit `watchPaths` (`--no-discover`).
    case none
    /// Every visible tmpfs mount.
    case all
    /// Only tmpfs mounts at or below this path (tests use it to stay inside their own tree).
    case under(PathBytes)
}

/// Everything the sensor and capture pipeline need to know; built by the daemon from flags.
public struct SensorConfiguration: Sendable {
    /// `<state>/evidence`: content-addressed copies live below it.
    public var evidenceDirectory: PathBytes
    public var discovery: TmpfsDiscovery
    /// Extra roots to watch (`--watch`), tmpfs or not.
    public var watchPaths: [PathBytes]
    /// Never watched or scanned (the state directory, should it sit on a tmpfs).
    public var excludedPaths: [PathBytes]
    /// Files above this size, or that grow past it while read, are recorded as `tooLarge`, not
    /// hashed.
    public var hashSizeCap: Int64
    /// How long one file's hash may take before it is recorded `timedOut`.
    public var hashTimeBudgetSeconds: Double = 30
    /// How many files may be pinned open between create and close-write.
    public var maxPinnedFiles: Int
    /// Capacity of the reader → capture queue; a full queue turns into a rescan.
    public var captureQueueCapacity: Int
    /// Capacity of the capture → evidence queue. Each queued job holds an open descriptor, so
    /// this bounds the descriptors in flight; a full queue makes the capture thread wait.
    public var evidenceQueueCapacity: Int
    /// How often a mount that could not be fully watched (inotify watch limit) is rescanned.
    public var fallbackRescanIntervalMilliseconds: Int
    /// The share of `fs.inotify.max_user_watches` the sensor may take (root shares the limit
    /// with systemd, udev and the rest): past it, directories are not watched and their mount
    /// is rescanned periodically instead, as at the kernel's own limit.
    public var inotifyWatchShare: Double = 0.5
    /// The state directory's disk budget, asked before each evidence copy (nil: none).
    public var stateBudget: StateBudget?
    /// How many times a file that changes while being hashed is hashed again.
    public var maxHashAttempts: Int
    /// Mark watched directories with fanotify too (needs CAP_SYS_ADMIN; falls back when refused).
    public var useFanotify: Bool
    /// Capture files when they are executed (FAN_OPEN_EXEC). Off while the exec guard runs: it
    /// sees every exec there already and hands each new version to capture, and a second
    /// fanotify event per exec would cost every exec on tmpfs a little more.
    public var captureOnExec = true
    /// Watch every exec on the host and capture what runs without a file a watch would see
    /// (memfd, deleted, a script an interpreter was given); nil: off.
    public var execMonitor: ProcessCapturer.Settings?

    public init(
        evidenceDirectory: PathBytes,
        discovery: TmpfsDiscovery = .all,
        watchPaths: [PathBytes] = [],
        excludedPaths: [PathBytes] = [],
        hashSizeCap: Int64 = 256 * 1024 * 1024,
        maxPinnedFiles: Int = 4096,
        captureQueueCapacity: Int = 65_536,
        evidenceQueueCapacity: Int = 2048,
        fallbackRescanIntervalMilliseconds: Int = 5000,
        maxHashAttempts: Int = 3,
        useFanotify: Bool = true
    ) {
        self.useFanotify = useFanotify
        self.evidenceDirectory = evidenceDirectory
        self.discovery = discovery
        self.watchPaths = watchPaths
        self.excludedPaths = excludedPaths
        self.hashSizeCap = hashSizeCap
        self.maxPinnedFiles = maxPinnedFiles
        self.captureQueueCapacity = captureQueueCapacity
        self.evidenceQueueCapacity = evidenceQueueCapacity
        self.fallbackRescanIntervalMilliseconds = fallbackRescanIntervalMilliseconds
        self.maxHashAttempts = maxHashAttempts
    }
}
