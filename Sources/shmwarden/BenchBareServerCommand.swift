// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import WardenHTTP

extension BareDecodeServer.Decoding: ExpressibleByArgument {}

/// `shmwarden bench-bare-server --port P [--decoding codable|warden]`: a Hummingbird server that
/// only decodes each posted alert and answers 200 — the ceilings that `scripts/bench-intake`
/// compares the real, durable intake against. Hidden.
struct BenchBareServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-bare-server", abstract: "Decode-only HTTP server (benchmark baseline).",
        shouldDisplay: false)

    @Option var port: Int = 2805
    @Option(help: "codable: Hummingbird's request.decode into a Codable alert; warden: the agent's alert reader.")
    var decoding: BareDecodeServer.Decoding = .warden

    func run() async throws {
        try await BareDecodeServer.run(host: "127.0.0.1", port: port, decoding: decoding)
    }
}
