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
    ///
    /// Thread by thread, through both lists sorted by thread and time. (No dictionary by
    /// thread: its first use cost the end of every run a protocol conformance lookup, the
    /// runtime's scan of the binary's records.)
    static func values(of calls: [Call], in exits: [SyscallExitTrace.Exit]) -> [Int64?] {
        let exits = exits.sorted { $0.tid != $1.tid ? $0.tid < $1.tid : $0.time < $1.time }
        // In the order each thread's calls were answered (calls only counted come after
        // those described; ties keep that order).
        let order = calls.indices.sorted { a, b in
            let (x, y) = (calls[a], calls[b])
            if x.tid != y.tid { return x.tid < y.tid }
            return x.answeredAt != y.answeredAt ? x.answeredAt < y.answeredAt : a < b
        }
        var values = [Int64?](repeating: nil, count: calls.count)
        var threadStart = 0  // in `exits`
        var position = 0  // in `order`
        while position < order.count {
            let tid = calls[order[position]].tid
            var end = position
            while end < order.count && calls[order[end]].tid == tid { end += 1 }
            while threadStart < exits.count && exits[threadStart].tid < tid { threadStart += 1 }
            var threadEnd = threadStart
            while threadEnd < exits.count && exits[threadEnd].tid == tid { threadEnd += 1 }
            var next = threadStart
            for rank in position..<end {
                let index = order[rank]
                let call = calls[index]
                // Its window ends at its thread's next answer (the next notification came before it).
                let windowEnd = rank + 1 < end ? calls[order[rank + 1]].answeredAt : .max
                while next < threadEnd && exits[next].time <= call.answeredAt { next += 1 }
                var probe = next
                while probe < threadEnd && exits[probe].time < windowEnd {
                    let number = exits[probe].number
                    if number == call.number || call.numbersAfterExec.contains(number) {
                        values[index] = exits[probe].value
                        break
                    }
                    probe += 1
                }
            }
            threadStart = threadEnd
            position = end
        }
        return values
    }
}
