// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenFuzzing
import WardenTestSupport

/// Every seed and every input a fuzzer once crashed on goes through its target on every test
/// run: a crash found once stays fixed.
@Suite struct CorpusReplayTests {
    @Test(arguments: FuzzTargets.names)
    func everySeedAndRegressionPassesItsTarget(_ target: String) throws {
        var replayed = 0
        for kind in ["corpus", "regressions"] {
            let directory = packagePath("Fuzz/\(kind)/\(target)")
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            for name in names.sorted() where !name.hasPrefix(".") {
                let bytes = try #require(FileManager.default.contents(atPath: directory + "/" + name))
                #expect(FuzzTargets.run(target, Array(bytes)))
                replayed += 1
            }
        }
        #expect(replayed > 0, "no seeds for \(target)")
    }
}
