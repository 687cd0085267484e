// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import Logging
import SystemPackage
import WardenCore
import WardenLinux
import WardenStore

/// The inotify reader: one dedicated thread that watches every directory of every root, pins
/// files as they are created, follows mounts as they come and go, and hands capture jobs on.
///
/// Next to each inotify watch it puts a fanotify mark (close-write and exec on the directory's
/// children) when it runs with CAP_SYS_ADMIN. inotify only names a file, and a dropper that
/// writes, closes and unlinks faster than we read the name leaves nothing to open; a fanotify
/// event carries a descriptor the kernel opened at close or exec time, so those bytes are ours
/// whatever the dropper does next.
///
/// It never blocks on the capture thread for ordinary events: when the capture queue is full
/// the job is dropped, counted, and its root rescanned (as for a kernel `IN_Q_OVERFLOW`), so no
/// executable is silently lost.
///
/// - Important: Everything but `requestStop()` runs on the reader thread.
final class SensorEngine {
    /// One watched root (a tmpfs mount point or a `--watch` path), keyed by its path.
    struct Root {
        var device: UInt64
        /// The inotify watch limit was hit: rescanned every interval instead.
        var degraded = false
        var nextFallbackRescan: Int64 = 0
    }

    private let configuration: SensorConfiguration
    private let metrics: SensorMetrics
    private let logger: Logger
    private let jobs: BlockingQueue<CaptureJob>
    private let now: () -> Timestamp
    private let inotify: Inotify
    /// nil without CAP_SYS_ADMIN: inotify alone then (create-time pins only).
    private let fanotify: Fanotify?
    private var fanotifyMarked: Set<PathBytes> = []
    private var fanotifyMarkFailureLogged = false
    /// Fanotify descriptors waiting in the capture queue are open files: past this many queued
    /// jobs the reader leaves fanotify events in the kernel's queue until the capture thread
    /// catches up (an overflow there becomes a rescan).
    private let fanotifyBacklogLimit: Int
    private let stop: StopSignal
    private let mountInfo: FileDescriptor

    private var roots: [PathBytes: Root] = [:]
    /// At most this many inotify watches: the sensor's share of the user's limit.
    private let watchBudget: Int
    private var watches: [Int32: (directory: PathBytes, root: PathBytes)] = [:]
    private var watchByDirectory: [PathBytes: Int32] = [:]
    private let pins: PinTable
    private var pendingDirectoryMoves: [UInt32: PathBytes] = [:]
    private var rescanNeeded: Set<PathBytes> = []
    /// Content versions already handed on for an exec event.
    private var execsSeen: Set<ContentVersion> = []

    init(
        configuration: SensorConfiguration, metrics: SensorMetrics, logger: Logger, jobs: BlockingQueue<CaptureJob>,
        now: @escaping () -> Timestamp
    ) throws {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.jobs = jobs
        self.now = now
        self.inotify = try Inotify()
        do {
            self.fanotify = configuration.useFanotify ? try Fanotify() : nil
        } catch {
            self.fanotify = nil
            logger.notice(
                "fanotify unavailable; files closed and unlinked faster than inotify is read can be missed",
                metadata: ["error": "\(error)"])
        }
        self.fanotifyBacklogLimit = max(256, min(configuration.captureQueueCapacity / 2, 8192))
        self.stop = try StopSignal()
        self.mountInfo = try sys_open(MountTable.path, flags: O_RDONLY, followingSymlinks: true)
        self.pins = PinTable(capacity: configuration.maxPinnedFiles)
        self.watchBudget = Self.watchBudget(share: configuration.inotifyWatchShare)
    }

    /// The share of `fs.inotify.max_user_watches`; unbounded when it cannot be read.
    static func watchBudget(share: Double) -> Int {
        guard let text = try? sys_readFile(Array("/proc/sys/fs/inotify/max_user_watches".utf8)),
            let limit = Int(
                String(decoding: text.prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }, as: UTF8.self))
        else { return .max }
        return max(1, Int(Double(limit) * min(1, max(0, share))))
    }

    deinit {
        sys_close(mountInfo)
    }

    /// Asks the reader thread to stop; safe from any thread.
    func requestStop() {
        stop.fire()
    }

    /// Sets up the initial roots; then `ready` is called, and the thread serves events until stopped.
    func run(ready: () -> Void) {
        refreshRoots(initial: true)
        ready()
        var fds = [
            pollfd(fd: inotify.descriptor.rawValue, events: Int16(POLLIN), revents: 0),
            pollfd(fd: stop.descriptor.rawValue, events: Int16(POLLIN), revents: 0),
            pollfd(fd: mountInfo.rawValue, events: Int16(POLLPRI), revents: 0),
            pollfd(fd: fanotify?.descriptor.rawValue ?? -1, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            for index in fds.indices { fds[index].revents = 0 }
            let backlogged = jobs.count >= fanotifyBacklogLimit
            // A negative fd is ignored by poll: that is how fanotify is paused while backlogged.
            fds[3].fd = backlogged ? -1 : (fanotify?.descriptor.rawValue ?? -1)
            do {
                _ = try sys_poll(&fds, timeout: backlogged ? 2 : pollTimeout())
            } catch {
                logger.error("poll failed", metadata: ["error": "\(error)"])
                break
            }
            if fds[1].revents != 0 {
                // Events already queued happened before the stop: take them in too.
                drainFanotify()
                drainInotify()
                break
            }
            // fanotify first: its descriptors make the inotify pins for the same files redundant.
            if fds[3].revents != 0 || (!backlogged && fanotify != nil && fds[0].revents != 0) { drainFanotify() }
            if fds[0].revents != 0 { drainInotify() }
            if !rescanNeeded.isEmpty { runPendingRescans() }
            if fds[2].revents & Int16(POLLPRI | POLLERR) != 0 { refreshRoots(initial: false) }
            runDueFallbackRescans()
        }
        // Whatever is still pinned may never see its close-write: capture it as it is now.
        for (path, pinned) in pins.takeAll() {
            push(.file(path, root: root(for: path) ?? path, pinned: pinned))
        }
    }

    // MARK: - Events

    private func drainInotify() {
        drain("inotify", counter: .inotifyEvents, read: inotify.readRecords, handle: handle)
        // A directory moved out of our tree has no matching IN_MOVED_TO: stop watching it.
        for (_, path) in pendingDirectoryMoves { removeWatches(under: path) }
        pendingDirectoryMoves.removeAll()
    }

    /// Turns fanotify events into capture jobs carrying the kernel's descriptors.
    private func drainFanotify() {
        guard let fanotify else { return }
        drain(
            "fanotify", counter: .fanotifyEvents, while: { jobs.count < fanotifyBacklogLimit },
            read: fanotify.readEvents, handle: handle)
    }

    /// Reads a non-blocking event queue until it is empty (or `condition` fails) and handles
    /// each event.
    private func drain<Event>(
        _ name: String, counter: SensorMetrics.Counter, while condition: () -> Bool = { true },
        read: () throws(SystemCallError) -> [Event], handle: (Event) -> Void
    ) {
        while condition() {
            let events: [Event]
            do {
                events = try read()
            } catch {
                logger.error("\(name) read failed", metadata: ["error": "\(error)"])
                return
            }
            if events.isEmpty { return }
            metrics.add(counter, events.count)
            for event in events { handle(event) }
        }
    }

    /// Rescans the roots an overflow (the kernel's or our own queue's) left incomplete.
    private func runPendingRescans() {
        let roots = rescanNeeded
        rescanNeeded.removeAll()
        for root in roots.sorted() { rescan(root, reason: "overflow") }
    }

    private func handle(_ event: FanotifyEvent) {
        if event.mask.contains(.queueOverflow) {
            metrics.add(.kernelOverflows)
            logger.warning("fanotify queue overflowed; rescanning every root")
            push(.event(SensorEvent(time: now(), kind: .overflow, mountPoint: nil, detail: "FAN_Q_OVERFLOW")))
            rescanNeeded.formUnion(roots.keys)
            return
        }
        guard let fd = event.descriptor else { return }
        guard let (bytes, status) = sys_descriptorPath(fd), status.isRegularFile else {
            sys_close(fd)
            return
        }
        let path = PathBytes(bytes)
        guard let root = root(for: path), !configuration.excludedPaths.contains(where: { path.isWithin($0) }) else {
            sys_close(fd)
            return
        }
        // Executing the same bytes again says nothing new: do not wake the capture thread for it
        // (a loop exec'ing one binary would otherwise cost a capture pass per exec).
        if event.mask == .openExec {
            guard execsSeen.insert(status.contentVersion).inserted else {
                sys_close(fd)
                return
            }
            if execsSeen.count > 65_536 { execsSeen = [status.contentVersion] }
        }
        if let pinned = pins.take(path) {
            if pinned.status.device == status.device && pinned.status.inode == status.inode {
                sys_close(pinned.descriptor)
            } else {
                _ = pins.insert(pinned, for: path)
            }
        }
        push(.file(path, root: root, pinned: PinnedFile(descriptor: fd, status: status)), orRescan: root)
    }

    private func handle(_ record: InotifyRecord) {
        let mask = record.mask
        if mask.contains(.queueOverflow) {
            metrics.add(.kernelOverflows)
            logger.warning("inotify queue overflowed; rescanning every root")
            push(.event(SensorEvent(time: now(), kind: .overflow, mountPoint: nil, detail: "IN_Q_OVERFLOW")))
            rescanNeeded.formUnion(roots.keys)
            return
        }
        guard let (directory, root) = watches[record.watch] else { return }
        if mask.contains(.ignored) {
            watches.removeValue(forKey: record.watch)
            if watchByDirectory[directory] == record.watch { watchByDirectory.removeValue(forKey: directory) }
            return
        }
        if record.name.isEmpty { return }  // IN_DELETE_SELF, IN_MOVE_SELF, IN_UNMOUNT: IN_IGNORED follows.
        let path = directory.appending(record.name)
        if configuration.excludedPaths.contains(where: { path.isWithin($0) }) { return }

        if mask.contains(.isDirectory) {
            if mask.contains(.create) || mask.contains(.movedTo) {
                if mask.contains(.movedTo), let old = pendingDirectoryMoves.removeValue(forKey: record.cookie) {
                    removeWatches(under: old)
                }
                let files = DirectoryWalker.walk(
                    path, device: roots[root]?.device ?? 0, excluded: configuration.excludedPaths
                ) {
                    addWatch($0, root: root)
                }
                if !files.isEmpty { push(.rescan(root: root, files: files, reconcile: false), orRescan: root) }
            } else if mask.contains(.delete) {
                removeWatches(under: path)
                push(.subtreeDeleted(path), orRescan: root)
            } else if mask.contains(.movedFrom) {
                pendingDirectoryMoves[record.cookie] = path
                push(.subtreeDeleted(path), orRescan: root)
            }
            return
        }

        if mask.contains(.create) {
            if fanotifyMarked.contains(directory) {
                // The kernel hands us this file at close-write: a pin would be released unused.
                // Only what has no close-write to come is taken now: special files, hard links.
                guard let status = try? sys_lstat(path.bytes), !status.isRegularFile || status.linkCount > 1 else {
                    return
                }
                pin(path, root: root, holdUntilCloseWrite: false)
            } else {
                pin(path, root: root, holdUntilCloseWrite: true)
            }
        } else if mask.contains(.closeWrite) {
            if fanotifyMarked.contains(directory) {
                // The fanotify event for this close carries its own descriptor.
                if let pinned = pins.take(path) { sys_close(pinned.descriptor) }
            } else if let pinned = pins.take(path) {
                push(.file(path, root: root, pinned: pinned), orRescan: root)
            } else {
                pin(path, root: root, holdUntilCloseWrite: false)
            }
        } else if mask.contains(.movedTo) {
            pin(path, root: root, holdUntilCloseWrite: false)
        } else if mask.contains(.attrib) {
            // Still being written: its close-write will capture it, with the new mode.
            if !pins.contains(path) { pin(path, root: root, holdUntilCloseWrite: false) }
        } else if mask.contains(.delete) {
            // A pin stays: the writer may still hold the file open, and its close-write will come.
            push(.deleted(path), orRescan: root)
        } else if mask.contains(.movedFrom) {
            if let pinned = pins.take(path) { sys_close(pinned.descriptor) }
            push(.deleted(path), orRescan: root)
        }
    }

    /// Opens `path` now. At create time (`holdUntilCloseWrite`) a regular file is held in the
    /// pin table for its close-write; otherwise, or when it arrives complete (a hard link, an
    /// O_TMPFILE linked in: no close-write follows), it goes straight to the capture thread.
    private func pin(_ path: PathBytes, root: PathBytes, holdUntilCloseWrite: Bool) {
        switch FilePinner.pin(path) {
        case .regular(let pinned):
            guard holdUntilCloseWrite, pinned.status.linkCount <= 1 else {
                push(.file(path, root: root, pinned: pinned), orRescan: root)
                return
            }
            metrics.add(.filesPinned)
            for released in pins.insert(pinned, for: path) {
                sys_close(released.descriptor)
                metrics.add(.pinsEvicted)
            }
        case .special(let status):
            push(.special(path, root: root, status: status), orRescan: root)
        case .vanished:
            metrics.add(.vanishedBeforeOpen)
        case .failed(let error):
            metrics.add(.captureErrors)
            logger.warning("cannot open file", metadata: ["file.path": "\(path)", "error": "\(error)"])
        }
    }

    /// Offers `job` to the capture thread; when the queue is full, drops it (closing any pinned
    /// descriptor), counts it, and schedules a rescan of `root`.
    private func push(_ job: CaptureJob, orRescan root: PathBytes) {
        if jobs.offer(job) { return }
        if case .file(_, _, let pinned?) = job { sys_close(pinned.descriptor) }
        metrics.add(.queueOverflows)
        rescanNeeded.insert(root)
    }

    /// Pushes a job that must not be dropped (rescans, events), waiting for room.
    private func push(_ job: CaptureJob) { jobs.put(job) }

    // MARK: - Watches

    private func addWatch(_ directory: PathBytes, root: PathBytes) {
        do {
            if watchByDirectory[directory] == nil && watches.count >= watchBudget {
                metrics.add(.watchBudgetHits)
                degrade(
                    root, because: "the sensor's share of fs.inotify.max_user_watches (\(watchBudget) watches) is taken"
                )
                return
            }
            let wd = try inotify.addWatch(directory.bytes, mask: .sensorDirectory)
            if watches[wd] == nil { metrics.add(.watchesAdded) }
            if let previous = watches[wd]?.directory, previous != directory {
                watchByDirectory.removeValue(forKey: previous)
            }
            watches[wd] = (directory, root)
            watchByDirectory[directory] = wd
            markForFanotify(directory)
        } catch {
            if error.errno == .noSpace {
                metrics.add(.watchLimitHits)
                degrade(root, because: "ENOSPC from inotify_add_watch on \(directory) (fs.inotify.max_user_watches)")
            } else if error.errno != .noSuchFileOrDirectory && error.errno != .notDirectory {
                logger.warning("cannot watch directory", metadata: ["file.path": "\(directory)", "error": "\(error)"])
            }
        }
    }

    /// The mount cannot be fully watched: it is rescanned every fallback interval instead.
    private func degrade(_ root: PathBytes, because reason: String) {
        guard roots[root]?.degraded == false else { return }
        roots[root]?.degraded = true
        roots[root]?.nextFallbackRescan = sys_monotonicNanoseconds() + fallbackInterval
        logger.error(
            "inotify watches exhausted; falling back to periodic rescans",
            metadata: [
                "mount.point": "\(root)", "reason": "\(reason)",
                "interval.ms": "\(configuration.fallbackRescanIntervalMilliseconds)",
            ])
        push(
            .event(
                SensorEvent(
                    time: now(), kind: .watchLimit, mountPoint: root,
                    detail: "\(reason); rescanning every \(configuration.fallbackRescanIntervalMilliseconds) ms")))
    }

    private func markForFanotify(_ directory: PathBytes) {
        guard let fanotify, !fanotifyMarked.contains(directory) else { return }
        do {
            try fanotify.markDirectory(
                directory.bytes, mask: configuration.captureOnExec ? [.closeWrite, .openExec] : [.closeWrite])
            fanotifyMarked.insert(directory)
        } catch {
            if !fanotifyMarkFailureLogged {
                fanotifyMarkFailureLogged = true
                logger.warning(
                    "fanotify mark failed; this directory relies on inotify pins alone",
                    metadata: ["file.path": "\(directory)", "error": "\(error)"])
            }
        }
    }

    private func removeWatches(under path: PathBytes) {
        // A directory's fanotify mark goes with its inode; events from a directory that left our
        // tree are dropped by the root check in handle(_: FanotifyEvent).
        fanotifyMarked = fanotifyMarked.filter { !$0.isWithin(path) }
        for (directory, wd) in watchByDirectory where directory.isWithin(path) {
            inotify.removeWatch(wd)
            watchByDirectory.removeValue(forKey: directory)
            watches.removeValue(forKey: wd)
        }
    }

    private var fallbackInterval: Int64 { Int64(configuration.fallbackRescanIntervalMilliseconds) * 1_000_000 }

    private func pollTimeout() -> Int32 {
        let due = roots.values.filter(\.degraded).map(\.nextFallbackRescan).min()
        guard let due else { return -1 }
        return Int32(clamping: max(0, (due - sys_monotonicNanoseconds()) / 1_000_000 + 1))
    }

    private func runDueFallbackRescans() {
        let clock = sys_monotonicNanoseconds()
        for (path, root) in roots where root.degraded && root.nextFallbackRescan <= clock {
            roots[path]?.nextFallbackRescan = clock + fallbackInterval
            rescan(path, reason: "watch-limit fallback")
        }
    }

    /// Re-walks `root` (adding any missing watches first) and captures everything on it.
    private func rescan(_ root: PathBytes, reason: String) {
        guard let state = roots[root] else { return }
        metrics.add(.rescans)
        logger.info("rescanning", metadata: ["mount.point": "\(root)", "reason": "\(reason)"])
        let files = DirectoryWalker.walk(root, device: state.device, excluded: configuration.excludedPaths) {
            addWatch($0, root: root)
        }
        push(
            .event(
                SensorEvent(time: now(), kind: .rescan, mountPoint: root, detail: "\(reason): \(files.count) entries")))
        push(.rescan(root: root, files: files, reconcile: true))
    }

    private func root(for path: PathBytes) -> PathBytes? {
        roots.keys.filter { path.isWithin($0) }.max { $0.bytes.count < $1.bytes.count }
    }

    // MARK: - Mounts

    /// Reads the mount table and brings the watched roots in line with it.
    private func refreshRoots(initial: Bool) {
        let wanted: [PathBytes: WatchRoots.Facts]
        do {
            // Reading the whole file also re-arms POLLPRI.
            let entries = try MountInfoParser.parse(try MountTable.readAll(mountInfo))
            wanted = WatchRoots.wanted(configuration: configuration, mounts: entries, logger: initial ? logger : nil)
        } catch {
            logger.error("cannot read /proc/self/mountinfo", metadata: ["error": "\(error)"])
            return
        }
        for (path, root) in roots where wanted[path]?.device != root.device {
            roots.removeValue(forKey: path)
            removeWatches(under: path)
            metrics.add(.mountsRemoved)
            logger.notice("stopped watching", metadata: ["mount.point": "\(path)"])
            push(.event(SensorEvent(time: now(), kind: .mountRemoved, mountPoint: path, detail: "unmounted")))
            push(.subtreeDeleted(path))
        }
        for (path, facts) in wanted.sorted(by: { $0.key < $1.key }) where roots[path] == nil {
            roots[path] = Root(device: facts.device)
            if !initial { metrics.add(.mountsAdded) }
            logger.notice("watching", metadata: ["mount.point": "\(path)"])
            push(
                .event(
                    SensorEvent(
                        time: now(), kind: .mountAdded, mountPoint: path, detail: facts.discovered ? "tmpfs" : "--watch"
                    )))
            rescan(path, reason: initial ? "start" : "new mount")
        }
    }
}
