// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import WardenDaemon

/// `shmwarden bench-hash FILE`: hashes one file with the sensor's hasher and prints the digest.
/// Hidden; `scripts/bench-sensor` times it against sha256sum and openssl.
struct BenchHashCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-hash", abstract: "Print a file's SHA-256 as the sensor computes it.", shouldDisplay: false)

    @Argument var file: String

    func run() async throws {
        print("\(try Agent.sha256(ofFile: file))  \(file)")
    }
}
