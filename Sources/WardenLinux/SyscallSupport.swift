// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

// The seam's one rule. Every system call shmwarden makes passes through WardenLinux, one file
// per kernel subsystem, in a function named `sys_<name>` (the swift-system `system_*` pattern)
// or a typed wrapper over one. One helper runs them all: it retries EINTR, hands EAGAIN back as
// a value where the caller asked for non-blocking I/O, traps on EBADF and EFAULT (a corrupt
// descriptor table is a bug, not a condition to carry on through), and throws the rest as
// `SystemCallError`. What Swift cannot call itself is in the CWardenLinux target, called from
// here only.

import CWardenLinux
@preconcurrency import Glibc
import SystemPackage

/// Runs `body` until it stops failing with EINTR; returns its result or throws its errno.
@inline(__always)
func retryingInterrupts<T: FixedWidthInteger>(
    _ name: String, path: [UInt8]? = nil, _ body: () -> T
) throws(SystemCallError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        precondition(code != EBADF && code != EFAULT, "\(name): \(code == EBADF ? "EBADF" : "EFAULT")")
        throw SystemCallError(syscall: name, path: path, errno: Errno(rawValue: code))
    }
}

/// Calls `body` with a NUL-terminated copy of `path`.
@inline(__always)
func withCPath<T>(_ path: [UInt8], _ body: (UnsafePointer<CChar>) throws(SystemCallError) -> T)
    throws(SystemCallError) -> T
{
    var terminated = path
    terminated.append(0)
    return try terminated.withUnsafeBufferPointer { (buffer) throws(SystemCallError) -> T in
        // Non-NUL interior bytes only: a path with an embedded NUL cannot name a file.
        guard !path.contains(0), let base = buffer.baseAddress else {
            throw SystemCallError(syscall: "path", path: path, errno: .invalidArgument)
        }
        return try base.withMemoryRebound(to: CChar.self, capacity: terminated.count) {
            (pointer) throws(SystemCallError) -> T in try body(pointer)
        }
    }
}
