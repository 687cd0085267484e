// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Testing
import WardenCore
import WardenLinux

@testable import WardenSandbox

@Suite struct KernelAuditReaderTests {
    /// The kernel's audit records of calls the observer answered itself carry the notification's
    /// action code; the filter's refusals and kills carry theirs, and only those count.
    @Test func auditRecordsOfObserverAnswersAreTold() {
        let record = { (code: String) in
            " audit(1764800000.123:456): auid=4294967295 uid=2147480381 gid=2147480381 ses=4294967295 pid=875 "
                + "comm=\"net\" exe=\"/sample/net\" sig=0 arch=c000003e syscall=41 compat=0 ip=0x7f00 code=\(code)"
        }
        #expect(KernelAuditReader.isObserverAnswer(record("0x7fc00000")))
        #expect(!KernelAuditReader.isObserverAnswer(record("0x50001")))  // ERRNO(EPERM)
        #expect(!KernelAuditReader.isObserverAnswer(record("0x80000000")))  // KILL_PROCESS
        #expect(!KernelAuditReader.isObserverAnswer(" type=1326 uid=1 syscall=41"))
    }
}
