// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import WardenLinux

/// Which traced exit (`SyscallExitTrace`) belongs to which notified call. Seccomp shows the
/// observer a call before the kernel runs it, and the trace shows what the call returned; this
/// pairs them, so a report says "refused (EROFS)" where it could only say "tried".
///
/// A notified call's thread waits from its notification until the observer answers. Its exit
/// comes after that answer and before the same thread's next notification. So a call's exit is
/// the first exit of its thread, with its number, in that window. An exit that was never
/// recorded leaves its call without a result, never with another call's. That happens when the
/// ring buffer was full, or when the thread ran on a CPU the trace did not follow.
enum SandboxCallResults {
    struct Call: Equatable {
        var tid: Int32
        /// The call's number in its caller's ABI, as the exit gives it.
        var number: Int64
        /// When the observer answered it (CLOCK_MONOTONIC ns), before the sample could go on.
        var answeredAt: Int64
        /// The numbers its exit may carry when the call replaced the program: the kernel gives
        /// an execveat that succeeded the exit of an execve, and an i386 program's exec of an
        /// x86_64 one the exit of x86_64's execve.
        var numbersAfterExec: [Int64] = []
    }

    /// For each of `calls`, what its exit returned; nil when no exit of it was recorded.
    static func values(of calls: [Call], in exits: [SyscallExitTrace.Exit]) -> [Int64?] {
        var byThread: [Int32: [SyscallExitTrace.Exit]] = [:]
        for exit in exits { byThread[exit.tid, default: []].append(exit) }
        for tid in byThread.keys { byThread[tid]!.sort { $0.time < $1.time } }
        // In the order they were answered (calls only counted come after those described).
        let order = calls.indices.sorted { (calls[$0].answeredAt, $0) < (calls[$1].answeredAt, $1) }
        // Each call's window ends at its thread's next answer (the next notification came before it).
        var windowEnd = [Int64](repeating: .max, count: calls.count)
        var latest: [Int32: Int] = [:]
        for index in order {
            let call = calls[index]
            if let previous = latest[call.tid] { windowEnd[previous] = call.answeredAt }
            latest[call.tid] = index
        }
        var cursor: [Int32: Int] = [:]
        var values = [Int64?](repeating: nil, count: calls.count)
        for index in order {
            let call = calls[index]
            guard let threadExits = byThread[call.tid] else { continue }
            var next = cursor[call.tid] ?? 0
            while next < threadExits.count && threadExits[next].time <= call.answeredAt { next += 1 }
            cursor[call.tid] = next
            while next < threadExits.count && threadExits[next].time < windowEnd[index] {
                let number = threadExits[next].number
                if number == call.number || call.numbersAfterExec.contains(number) {
                    values[index] = threadExits[next].value
                    break
                }
                next += 1
            }
        }
        return values
    }
}
