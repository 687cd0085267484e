// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import SystemPackage

/// An eventfd a polling thread watches to learn it should stop, or that work is ready for it:
/// `fire()` is safe from any thread (one `write(2)`), the descriptor goes into the thread's
/// `poll(2)` set, and `drain()` resets it once the thread has looked.
public final class StopSignal: Sendable {
    public let descriptor: FileDescriptor

    public init() throws(SystemCallError) { descriptor = try sys_eventfd() }

    deinit { sys_close(descriptor) }

    public func fire() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { Glibc.write(descriptor.rawValue, $0.baseAddress, 8) }
    }

    /// Clears what `fire()` signalled (the descriptor is non-blocking: nothing to read returns at once).
    public func drain() {
        var count: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &count) { Glibc.read(descriptor.rawValue, $0.baseAddress, 8) }
    }
}
