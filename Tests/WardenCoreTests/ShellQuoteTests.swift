// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenCore
import WardenTestSupport

@Suite struct ShellQuoteTests {
    /// Every quoted path, pasted into bash, must print exactly the original bytes.
    @Test(arguments: [
        Array("/dev/shm/plain-name_1.2".utf8), Array("/dev/shm/with space".utf8), Array("/dev/shm/it's".utf8),
        Array("/dev/shm/\"$(reboot)\"`id`".utf8), Array("/dev/shm/new\nline".utf8),
        Array("/dev/shm/".utf8) + [0xff, 0x01, 0x7f, 0x27, 0x5c], Array("/dev/shm/tab\there".utf8), [UInt8](),
    ])
    func quotedPathsRoundTripThroughBash(_ bytes: [UInt8]) throws {
        let quoted = ShellQuote.quote(PathBytes(bytes))
        #expect(!quoted.contains("\n"), "a command must stay on one line")
        let output = try ChildProcess.bash("printf '%s' \(quoted)")
        #expect(Array(output) == bytes, "\(quoted)")
    }
}
