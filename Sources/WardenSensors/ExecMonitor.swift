// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import Logging
import SystemPackage
import WardenCore
import WardenLinux

/// Sees every exec on the host through the kernel's process events connector (no eBPF), and
/// has `ProcessCapturer` take what each exec runs when it is a memfd, a deleted file, an
/// unrecorded file on a watched tmpfs, or a script an interpreter was given. At start, and
/// whenever events were lost to a full socket buffer, every running process is looked at
/// instead; and every `sweepInterval` each process's executable link is read for one deleted
/// since its exec (a binary that unlinks itself, or is removed while it runs), which no exec
/// event tells. One dedicated thread.
final class ExecMonitor {
    private let events: ProcessEventSocket
    private let capturer: ProcessCapturer
    private let metrics: SensorMetrics
    private let logger: Logger
    private let stop: StopSignal
    /// How often running processes are swept for a deleted executable.
    static let sweepInterval: Int64 = 2_000_000_000
    /// Wakeups closer together than this are a storm, and each gathers events for `stormGather`
    /// microseconds before it reads them.
    static let stormInterval: Int64 = 2_000_000
    static let stormGather: UInt32 = 4_000

    init(capturer: ProcessCapturer, metrics: SensorMetrics, logger: Logger) throws {
        self.events = try ProcessEventSocket()
        self.capturer = capturer
        self.metrics = metrics
        self.logger = logger
        self.stop = try StopSignal()
    }

    /// Asks the monitor thread to stop; safe from any thread.
    func requestStop() { stop.fire() }

    /// Runs until `requestStop`. Subscribed (in `init`) before the first scan: an exec during
    /// the scan is seen either way.
    func run() {
        scanAllProcesses()
        var lastSweep = sys_monotonicNanoseconds()
        var lastWake: Int64 = 0
        var fds = [
            pollfd(fd: events.descriptor.rawValue, events: Int16(POLLIN), revents: 0),
            pollfd(fd: stop.descriptor.rawValue, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            for index in fds.indices { fds[index].revents = 0 }
            do {
                _ = try sys_poll(&fds, timeout: Int32(Self.sweepInterval / 1_000_000))
            } catch {
                logger.error("exec monitor: poll failed", metadata: ["error": "\(error)"])
                return
            }
            if fds[1].revents != 0 { return }
            if sys_monotonicNanoseconds() - lastSweep >= Self.sweepInterval {
                sweepForDeletedExecutables()
                lastSweep = sys_monotonicNanoseconds()
            }
            guard fds[0].revents != 0 else { continue }
            // Under a storm of execs, one wakeup per exec costs more than the look itself: when
            // the last wakeup was moments ago, let a few more events gather first. A lone exec
            // is looked at at once.
            let now = sys_monotonicNanoseconds()
            if now - lastWake < Self.stormInterval { usleep(Self.stormGather) }
            lastWake = now
            let batch: ProcessEventSocket.Batch
            do {
                batch = try events.drain()
            } catch {
                logger.error("exec monitor: cannot read exec events", metadata: ["error": "\(error)"])
                return
            }
            metrics.add(.execEvents, batch.execs.count)
            for exec in batch.execs { capturer.capture(pid: exec.tgid) }
            if batch.lost {
                metrics.add(.execEventsLost)
                logger.warning("exec monitor: exec events were lost (socket buffer full); scanning every process")
                scanAllProcesses()
            }
        }
    }

    /// Every running process, as if each had just exec'd.
    private func scanAllProcesses() {
        metrics.add(.processScans)
        for pid in Self.runningProcesses() { capturer.capture(pid: pid) }
    }

    /// The processes whose executable is a memfd or deleted now: one readlink each.
    private func sweepForDeletedExecutables() {
        for pid in Self.runningProcesses() {
            guard let link = try? sys_readlink(Array("/proc/\(pid)/exe".utf8)),
                ProcessExecutable.isFileless(PathBytes(link))
            else { continue }
            capturer.capture(pid: pid)
        }
    }

    /// The pids in /proc but this agent's own.
    private static func runningProcesses() -> [Int32] {
        guard let proc = try? sys_open(Array("/proc".utf8), flags: O_RDONLY | O_DIRECTORY) else { return [] }
        defer { sys_close(proc) }
        let own = sys_getpid()
        return ((try? sys_readDirectory(proc)) ?? []).compactMap { name, _ in
            Int32(String(decoding: name, as: UTF8.self)).flatMap { $0 == own ? nil : $0 }
        }
    }
}
