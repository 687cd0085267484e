// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import SystemPackage

/// An eventfd a polling thread watches to learn it should stop: `fire()` is safe from any
/// thread (one `write(2)`), and the descriptor goes into the thread's `poll(2)` set.
public final class StopSignal: Sendable {
    public let descriptor: FileDescriptor

    public init() throws(SystemCallError) { descriptor = try sys_eventfd() }

    deinit { sys_close(descriptor) }

    public func fire() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { Glibc.write(descriptor.rawValue, $0.baseAddress, 8) }
    }
}
