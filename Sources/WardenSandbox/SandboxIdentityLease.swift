// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import SystemPackage
import WardenLinux

/// A sandbox identity (the uid and gid a sample runs as) that no other run on the host uses
/// while this lease is held: the agent's runs and any `shmwarden sandbox` command's.
///
/// Two runs under one uid would share its process limit (RLIMIT_NPROC counts per uid: one
/// run's fork bomb would starve the other) and each other's refused calls (counted from the
/// kernel's audit records by uid). The lease is an abstract unix socket bound to a name made
/// from the identity: the name is the host's (per network namespace, the agent and its commands
/// share one), and the kernel frees it when the socket is closed or its process dies, so a run
/// killed midway leaves nothing held.
final class SandboxIdentityLease {
    let identity: UInt32
    private var socket: FileDescriptor?

    private init(identity: UInt32, socket: FileDescriptor) {
        self.identity = identity
        self.socket = socket
    }

    deinit { release() }

    struct Exhausted: Error, CustomStringConvertible {
        var count: Int
        var description: String { "all \(count) sandbox identities are in use by other runs" }
    }

    /// The first free identity of `range`, trying from the one `start` places below its top and
    /// then downwards, around the range.
    static func acquire(in range: ClosedRange<UInt32>, start: UInt32) throws -> SandboxIdentityLease {
        let count = UInt32(range.count)
        for step in 0..<count {
            let identity = range.upperBound - (start &+ step) % count
            switch Result(catching: { () throws(SystemCallError) in try sys_bindAbstractSocket(name(of: identity)) }) {
            case .success(let socket): return SandboxIdentityLease(identity: identity, socket: socket)
            case .failure(let error) where error.errno == .addressInUse: continue
            case .failure(let error): throw error
            }
        }
        throw Exhausted(count: Int(count))
    }

    static func name(of identity: UInt32) -> [UInt8] { Array("shmwarden-sandbox-uid-\(identity)".utf8) }

    /// Frees the identity for other runs (also when the lease goes away).
    func release() {
        if let socket { sys_close(socket) }
        socket = nil
    }
}
