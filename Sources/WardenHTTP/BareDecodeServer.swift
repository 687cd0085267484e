// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Hummingbird
import WardenCore

/// The benchmark baseline: the same Hummingbird stack and the same alert decoding as the intake,
/// and nothing else (no correlation, no store).
public enum BareDecodeServer {
    public static func run(host: String, port: Int) async throws {
        let router = Router()
        router.post("/falco") { request, _ -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 1 << 20)
            do throws(AlertDecodingError) {
                _ = try FalcoAlert.decode(Data(body.readableBytesView))
                return IntakeRoutes.json(.ok, ["ok": true])
            } catch {
                return IntakeRoutes.json(.badRequest, ["error": error.reason])
            }
        }
        let app = Application(router: router, configuration: .init(address: .hostname(host, port: port)))
        try await app.runService()
    }
}
