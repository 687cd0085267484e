// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenDaemon

/// The state directory is named as `URL.standardizedFileURL` named it: absolute, with `.`, `..`
/// and repeated slashes taken out.
struct StateDirectoryTests {
    @Test func pathsAreStandardizedLexically() {
        #expect(StateDirectory(flag: "/var/lib//shmwarden/./x/../").path == "/var/lib/shmwarden")
        #expect(StateDirectory(flag: "/..").path == "/")
        #expect(StateDirectory(flag: nil, environment: [:]).path == "/var/lib/shmwarden")
        #expect(StateDirectory(flag: nil, environment: ["SHMWARDEN_STATE_DIR": "/srv/w"]).path == "/srv/w")
        let relative = StateDirectory(flag: "state/../warden", environment: [:]).path
        #expect(relative == FileManager.default.currentDirectoryPath + "/warden")
        #expect(relative == URL(fileURLWithPath: "state/../warden").standardizedFileURL.path)
    }
}
