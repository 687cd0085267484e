// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Testing
import WardenLinux

@Suite struct JournalSocketTests {
    @Test func journalEntriesKeepMultiLineValuesWhole() {
        let bytes = JournalSocket.encode([("MESSAGE", "one\ntwo"), ("PRIORITY", "5")])
        var expected = Array("MESSAGE\n".utf8)
        withUnsafeBytes(of: UInt64(7).littleEndian) { expected += $0 }
        expected += Array("one\ntwo\nPRIORITY=5\n".utf8)
        #expect(bytes == expected)
    }
}
