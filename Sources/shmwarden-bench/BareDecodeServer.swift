// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Hummingbird
import WardenCore

/// The benchmark baselines: the same Hummingbird stack as the intake, decoding each alert and
/// nothing else (no correlation, no store).
enum BareDecodeServer {
    /// How the bare handler decodes an alert.
    enum Decoding: String, CaseIterable, Sendable {
        /// Hummingbird's own `request.decode(as:context:)` into a Codable alert (Foundation's
        /// JSONDecoder): what a plain Hummingbird handler does, and the "framework's ceiling"
        /// that the intake issue and PLATFORM-NOTES measured (~10,000 requests/s).
        case codable
        /// The agent's own alert reader (`FalcoAlert.decode`): the framework plus the cheapest
        /// decoding this project has, a stricter ceiling than the issue's.
        case warden
    }

    /// A Falco alert as a plain Codable type, the way a Hummingbird handler would declare it.
    struct CodableAlert: Decodable {
        var rule: String
        var priority: String
        var time: String
        var output: String?
        var hostname: String?
        var source: String?
        var tags: [String]?
        var uuid: String?
        var output_fields: [String: FieldValue]?
    }

    static func run(host: String, port: Int, decoding: Decoding = .warden) async throws {
        let router = Router()
        switch decoding {
        case .codable:
            router.post("/falco") { request, context -> Response in
                // Hummingbird answers 400 by itself when this throws.
                _ = try await request.decode(as: CodableAlert.self, context: context)
                return reply(.ok, #"{"ok":true}"#)
            }
        case .warden:
            router.post("/falco") { request, _ -> Response in
                var request = request
                let body = try await request.collectBody(upTo: 1 << 20)
                do throws(AlertDecodingError) {
                    _ = try FalcoAlert.decode(Data(body.readableBytesView))
                    return reply(.ok, #"{"ok":true}"#)
                } catch {
                    return reply(.badRequest, #"{"error":"bad alert"}"#)
                }
            }
        }
        let app = Application(router: router, configuration: .init(address: .hostname(host, port: port)))
        try await app.runService()
    }

    /// A small JSON answer, as the intake's own are.
    static func reply(_ status: HTTPResponse.Status, _ json: String) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: json)))
    }
}
