// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

// Waiting on descriptors (poll) and waking a waiting thread (eventfd).

import CWardenLinux
@preconcurrency import Glibc
import SystemPackage

/// `poll(2)` over `fds`; returns how many have events. `timeout` in milliseconds, -1 for none.
public func sys_poll(_ fds: inout [pollfd], timeout: Int32) throws(SystemCallError) -> Int {
    let count = fds.count
    return Int(
        try fds.withUnsafeMutableBufferPointer { (b) throws(SystemCallError) -> Int32 in
            try retryingInterrupts("poll") { poll(b.baseAddress, nfds_t(count), timeout) }
        })
}

public func sys_eventfd() throws(SystemCallError) -> FileDescriptor {
    FileDescriptor(rawValue: try retryingInterrupts("eventfd") { warden_eventfd() })
}
