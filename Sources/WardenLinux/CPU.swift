// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

// CPU placement of the calling thread.

import CWardenLinux
@preconcurrency import Glibc
import SystemPackage

/// A thread's CPU affinity mask, to put back after a temporary pin.
public struct CPUAffinity: Sendable {
    fileprivate var mask: warden_cpu_mask
}

/// The CPU the calling thread runs on now (nil if the kernel will not say).
public func sys_currentCPU() -> Int32? {
    let cpu = warden_current_cpu()
    return cpu >= 0 ? cpu : nil
}

/// The calling thread's affinity mask.
public func sys_threadAffinity() -> CPUAffinity? {
    var mask = warden_cpu_mask()
    return warden_thread_affinity_get(&mask) == 0 ? CPUAffinity(mask: mask) : nil
}

/// Puts back a mask read by `sys_threadAffinity`.
public func sys_setThreadAffinity(_ affinity: CPUAffinity) throws(SystemCallError) {
    var mask = affinity.mask
    _ = try retryingInterrupts("sched_setaffinity") { warden_thread_affinity_set(&mask) }
}

/// Confines the calling thread to `cpu`; threads and processes it creates inherit that.
public func sys_pinThread(toCPU cpu: Int32) throws(SystemCallError) {
    _ = try retryingInterrupts("sched_setaffinity") { warden_pin_thread(cpu) }
}
