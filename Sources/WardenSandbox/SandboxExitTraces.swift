// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import Synchronization
import WardenCore
import WardenLinux

/// The process's loaded traces of system call exits (`SyscallExitTrace`), one per run under way,
/// kept for the next run when it is over.
///
/// A trace stays attached for a second after its run: attaching again soon after the
/// tracepoint's last program was detached waits for an RCU grace period, and runs come in
/// batches (an alert's files). Then it is detached, and the host's system calls stop running it.
enum SandboxExitTraces {
    /// The traces not in use, each with the number of its last release (a later one means
    /// it was used again meanwhile).
    private static let idle = Mutex<[(trace: Holder, release: Int)]>([])
    private static let releases = Atomic<Int>(0)
    /// How long an idle trace stays attached.
    static let lingerSeconds = 1

    /// One trace, handed from thread to thread: only the thread that holds it uses it.
    final class Holder: @unchecked Sendable {
        let trace: SyscallExitTrace
        init(_ trace: SyscallExitTrace) { self.trace = trace }
    }

    /// An idle trace, or a new one for these calls.
    static func take(calls: [Int32], compatibleCalls: [Int32], limit: Int) throws(SystemCallError) -> Holder {
        if let reused = idle.withLock({ $0.popLast()?.trace }) { return reused }
        return Holder(try SyscallExitTrace(calls: calls, compatibleCalls: compatibleCalls, limit: limit))
    }

    /// Loads a trace for these calls for the next run to take, unless one is idle already: the
    /// load is paid by a thread with time to spare rather than on the run's way between the
    /// jail's clone and the sample's start. Not attached: attached early, from another thread
    /// than the run's, it made runs wait for an RCU grace period.
    static func preload(calls: [Int32], compatibleCalls: [Int32], limit: Int) {
        guard idle.withLock({ $0.isEmpty }),
            let trace = try? SyscallExitTrace(calls: calls, compatibleCalls: compatibleCalls, limit: limit)
        else { return }
        idle.withLock { $0.append((Holder(trace), releases.add(1, ordering: .relaxed).newValue)) }
    }

    /// Puts `holder` back for the next run; detached a second later unless a run took it.
    static func give(_ holder: Holder) {
        let release = releases.add(1, ordering: .relaxed).newValue
        idle.withLock { $0.append((holder, release)) }
        DedicatedThread.detach(name: "warden-untrace", stackSize: 64 << 10) {
            sleep(UInt32(lingerSeconds))
            // Still idle since this release: detached (under the lock, so no run takes it meanwhile).
            idle.withLock { traces in
                if traces.contains(where: { $0.trace === holder && $0.release == release }) { holder.trace.detach() }
            }
        }
    }
}
