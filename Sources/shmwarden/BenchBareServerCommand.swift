// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import WardenHTTP

/// `shmwarden bench-bare-server --port P`: a Hummingbird server that only decodes each posted
/// alert and answers 200 — the framework's ceiling that `scripts/bench-intake` compares the
/// real, durable intake against. Hidden.
struct BenchBareServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-bare-server", abstract: "Decode-only HTTP server (benchmark baseline).",
        shouldDisplay: false)

    @Option var port: Int = 2805

    func run() async throws {
        try await BareDecodeServer.run(host: "127.0.0.1", port: port)
    }
}
