// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

// The clocks: monotonic for durations and deadlines, realtime for timestamps.

import CWardenLinux
@preconcurrency import Glibc
import SystemPackage

/// CLOCK_MONOTONIC in nanoseconds.
public func sys_monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// CLOCK_REALTIME as (seconds, nanoseconds).
/// The clock ticks per second that `/proc/PID/stat` counts in (`sysconf(_SC_CLK_TCK)`).
public func sys_clockTicksPerSecond() -> Int64 { Int64(sysconf(Int32(_SC_CLK_TCK))) }

public func sys_realtime() -> (seconds: Int64, nanoseconds: Int64) {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return (Int64(now.tv_sec), Int64(now.tv_nsec))
}

/// Blocks the calling thread for `milliseconds` (a thread of its own, never the cooperative pool).
public func sys_sleep(milliseconds: Int) {
    var request = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}
