// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Testing
import WardenCore
import WardenIntake
import WardenTestSupport

@Suite(.enabled(if: TestEnvironment.isRoot, "needs root to mount a tmpfs"))
struct TmpfsMountCacheTests {
    /// Late correlation looks again when the version moves (a container's shm mount may map an
    /// alert's path now): a new tmpfs must move it, within the cache's one-second refresh.
    @Test func aNewTmpfsMountIsSeenAndMovesTheVersion() async throws {
        let cache = TmpfsMountCache()
        let mount = try TestMount()
        defer { mount.remove() }
        #expect(mount.isTmpfs)
        // The first read sees the mount already; the version it starts from is after it.
        #expect(cache.mounts.contains(PathBytes(mount.path)))
        let before = cache.version
        let second = try TestMount()
        defer { second.remove() }
        // Seen at the cache's next refresh (once a second), not at once.
        let deadline = ContinuousClock.now + .seconds(3)
        while !cache.mounts.contains(PathBytes(second.path)) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(cache.mounts.contains(PathBytes(second.path)))
        #expect(cache.version > before)
    }
}
