// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import WardenCore

/// The sensor's counters and capture latency, which the threads update and `/metrics` (and tests) read.
public final class SensorMetrics: Sendable {
    public enum Counter: String, PrometheusCounter {
        /// inotify records decoded.
        case inotifyEvents = "inotify_events"
        /// fanotify events (close-write and exec, each with a kernel-opened descriptor).
        case fanotifyEvents = "fanotify_events"
        /// Kernel `IN_Q_OVERFLOW` records.
        case kernelOverflows = "kernel_overflows"
        /// Our own capture queue refused a job (each becomes a rescan).
        case queueOverflows = "queue_overflows"
        /// Rescans of a whole root (overflow, new mount, watch-limit fallback).
        case rescans
        /// Directory watches added.
        case watchesAdded = "watches_added"
        /// `inotify_add_watch` failed with ENOSPC: the mount falls back to periodic rescans.
        case watchLimitHits = "watch_limit_hits"
        /// Directories left unwatched because the sensor's share of the watch limit was taken.
        case watchBudgetHits = "watch_budget_hits"
        /// Files pinned open at create time.
        case filesPinned = "files_pinned"
        /// Pins released early because the pin table was full.
        case pinsEvicted = "pins_evicted"
        /// Files gone before we could open them.
        case vanishedBeforeOpen = "vanished_before_open"
        /// File observations sent to the store (executables and special files).
        case filesRecorded = "files_recorded"
        /// Executables among them.
        case executablesRecorded = "executables_recorded"
        /// Bytes hashed.
        case bytesHashed = "bytes_hashed"
        /// Files that changed while being hashed (each re-hashed).
        case rehashes
        /// New evidence copies written.
        case evidenceCopies = "evidence_copies"
        /// Evidence copy failures (the record is still kept, without an evidence path).
        case evidenceFailures = "evidence_failures"
        /// Capture failures other than a vanished file.
        case captureErrors = "capture_errors"
        /// Mounts that appeared / went away while running.
        case mountsAdded = "mounts_added"
        case mountsRemoved = "mounts_removed"
        /// Exec guard answers: allowed, denied (enforce), and answered from a cached hash.
        case guardAllowed = "guard_allowed"
        case guardDenied = "guard_denied"
        case guardCacheHits = "guard_cache_hits"
        /// The guard could not decide (error, too large to hash) and answered per `guard.failure`.
        case guardFailures = "guard_failures"
        /// Evidence copies not made because the state directory is over its budget.
        case evidenceSkipped = "evidence_skipped"
        /// Held execs answered per guard.failure because their file was not hashed in time (or
        /// their uid had too many files waiting to be hashed).
        case guardDeadlines = "guard_deadlines"
        /// Exec records the store's full queue refused (the answer itself was given).
        case execRecordsDropped = "exec_records_dropped"
        /// Exec events the process connector delivered.
        case execEvents = "exec_events"
        /// Exec events lost to a full socket buffer (each loss triggers a scan of every process).
        case execEventsLost = "exec_events_lost"
        /// Executables and scripts taken from running processes (memfd, deleted, tmpfs, script).
        case processCaptures = "process_captures"
        /// Scans of every process after lost exec events, or at start.
        case processScans = "process_scans"

        public var help: String {
            switch self {
            case .inotifyEvents: "inotify records decoded."
            case .fanotifyEvents: "fanotify events (close-write and exec)."
            case .kernelOverflows: "inotify queue overflows reported by the kernel (IN_Q_OVERFLOW)."
            case .queueOverflows: "Capture jobs the sensor's own queue refused (each becomes a rescan)."
            case .rescans: "Rescans of a whole watched root."
            case .watchesAdded: "Directory watches added."
            case .watchLimitHits:
                "inotify_add_watch failures with ENOSPC (the mount is rescanned periodically instead)."
            case .watchBudgetHits: "Directories left unwatched because the sensor's share of the watch limit was taken."
            case .filesPinned: "Files pinned open at create time."
            case .pinsEvicted: "Pins released early because the pin table was full."
            case .vanishedBeforeOpen: "Files gone before the sensor could open them."
            case .filesRecorded: "File observations sent to the store."
            case .executablesRecorded: "Executables among the recorded files."
            case .bytesHashed: "Bytes hashed."
            case .rehashes: "Files that changed while being hashed (each hashed again)."
            case .evidenceCopies: "Evidence copies written."
            case .evidenceFailures: "Evidence copies that failed (the record is kept without one)."
            case .captureErrors: "Capture failures other than a vanished file."
            case .mountsAdded: "tmpfs mounts that appeared while running."
            case .mountsRemoved: "tmpfs mounts that went away while running."
            case .guardAllowed: "Execs the guard allowed."
            case .guardDenied: "Execs the guard denied (enforce mode)."
            case .guardCacheHits: "Guard answers given from a cached hash."
            case .guardFailures: "Guard answers given per guard.failure because it could not decide."
            case .evidenceSkipped: "Evidence copies not made because the state directory is over its budget."
            case .guardDeadlines: "Held execs answered per guard.failure because their file was not hashed in time."
            case .execRecordsDropped: "Exec records the store's full queue refused (the answer itself was given)."
            case .execEvents: "Exec events the kernel's process connector delivered."
            case .execEventsLost: "Exec events lost to a full socket buffer (each loss scans every process)."
            case .processCaptures:
                "Executables and scripts taken from running processes (memfd, deleted, tmpfs, script)."
            case .processScans: "Scans of every running process (at start, and after lost exec events)."
            }
        }
    }

    private let counters = CounterSet<Counter>()

    /// From the moment the sensor opened an executable (when it was created, if it was pinned
    /// then; else at its close-write, exec or rescan) to its record handed to the store writer:
    /// the dropper's writing, if pinned at creation, then time in the capture queue,
    /// classification and hashing.
    public let captureLatency = LatencyHistogram(
        name: "shmwarden_file_capture_seconds",
        help: "From the sensor's first open of an executable to its record handed to the store.",
        bounds: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10])

    public init() {}

    public func add(_ counter: Counter, _ amount: Int = 1) { counters.add(counter, amount) }

    public subscript(_ counter: Counter) -> Int { counters[counter] }

    /// The Prometheus text exposition of these counters (`shmwarden_sensor_` prefix) and of the
    /// capture latency histogram.
    public func prometheusText() -> String {
        counters.prometheusText(prefix: "shmwarden_sensor_") + captureLatency.prometheusText()
    }

    /// Every counter with its value, in declaration order.
    public var snapshot: [(Counter, Int)] { counters.snapshot }
}
