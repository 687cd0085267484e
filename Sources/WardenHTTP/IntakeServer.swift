// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Hummingbird
import Logging
import WardenCore
import WardenIntake
import WardenStore

/// How the HTTP intake listens and what it accepts.
public struct IntakeServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Also listen on this unix socket (mode 0600) when set.
    public var unixSocketPath: String?
    /// When set, every request needs `Authorization: Bearer <token>`; anything else gets 401.
    public var bearerToken: String?
    /// Larger bodies get 413.
    public var bodyLimit: Int

    public init(
        host: String = "127.0.0.1", port: Int = 2804, unixSocketPath: String? = nil, bearerToken: String? = nil,
        bodyLimit: Int = 1 << 20
    ) {
        self.host = host
        self.port = port
        self.unixSocketPath = unixSocketPath
        self.bearerToken = bearerToken
        self.bodyLimit = bodyLimit
    }
}

/// The Hummingbird routes: Falco intake (`POST /`, `POST /falco`), `GET /healthz`, `GET /metrics`,
/// and `GET /alerts/{id}/report[?format=json]` when a report renderer is given.
public enum IntakeRoutes {
    /// Renders alert `id`'s report as `json` (or Markdown when false); nil for an unknown id.
    public typealias ReportRenderer = @Sendable (_ id: String, _ json: Bool) async throws -> String?

    public static func router(
        intake: AlertIntake, configuration: IntakeServerConfiguration,
        extraMetrics: @escaping @Sendable () -> String = { "" }, report: ReportRenderer? = nil
    ) -> Router<BasicRequestContext> {
        let router = Router()
        let handler: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
            await receive(request, intake: intake, configuration: configuration)
        }
        router.post("/", use: handler)
        router.post("/falco", use: handler)
        // Any other method on the intake paths: 405 naming the one that works (a browser or a
        // `curl` without `-d` otherwise got an empty 404, as if nothing listened there).
        let onlyPost: @Sendable (Request, BasicRequestContext) async throws -> Response = { _, _ in
            var response = json(.methodNotAllowed, ["error": "alerts are sent with POST"])
            response.headers[.allow] = "POST"
            return response
        }
        for path: RouterPath in ["/", "/falco"] {
            router.get(path, use: onlyPost)
            router.put(path, use: onlyPost)
            router.delete(path, use: onlyPost)
            router.patch(path, use: onlyPost)
        }
        router.get("/healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/metrics") { request, _ in
            if let denied = authorize(request, configuration: configuration, metrics: intake.metrics) { return denied }
            let text = intake.metrics.prometheusText() + extraMetrics()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        if let report {
            router.get("/alerts/:id/report") { request, context in
                if let denied = authorize(request, configuration: configuration, metrics: intake.metrics) { return denied }
                let id = context.parameters.get("id") ?? ""
                let format = request.uri.queryParameters.get("format") ?? "markdown"
                guard format == "markdown" || format == "json" else {
                    return json(.badRequest, ["error": "format must be markdown or json, not '\(format)'"])
                }
                do {
                    guard let text = try await report(id, format == "json") else {
                        return json(.notFound, ["error": "no alert with id '\(id)'"])
                    }
                    return Response(
                        status: .ok,
                        headers: [.contentType: format == "json" ? "application/json" : "text/markdown; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: text)))
                } catch {
                    return json(.internalServerError, ["error": "the report could not be built: \(error)"])
                }
            }
        }
        return router
    }

    static func receive(_ request: Request, intake: AlertIntake, configuration: IntakeServerConfiguration) async -> Response {
        if let denied = authorize(request, configuration: configuration, metrics: intake.metrics) { return denied }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: configuration.bodyLimit)
        } catch {
            intake.metrics.add(.tooLarge)
            return json(.contentTooLarge, ["error": "body larger than \(configuration.bodyLimit) bytes"])
        }
        switch await intake.submit(Data(body.readableBytesView)) {
        case .accepted(let id, let duplicate, let correlations):
            // The hot path: written by hand, JSONSerialization costs more than the rest of the reply.
            let text = #"{"correlations":\#(correlations),"duplicate":\#(duplicate),"id":"\#(jsonEscaped(id))"}"#
            return Response(
                status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
        case .rejected(let reason):
            return json(.badRequest, ["error": reason])
        case .busy:
            var response = json(.serviceUnavailable, ["error": "intake queue full; retry"])
            response.headers[.retryAfter] = "1"
            return response
        case .failed:
            return json(.internalServerError, ["error": "the alert could not be stored; see the agent's log"])
        }
    }

    static func authorize(_ request: Request, configuration: IntakeServerConfiguration, metrics: IntakeMetrics) -> Response? {
        guard let token = configuration.bearerToken else { return nil }
        if request.headers[.authorization] == "Bearer \(token)" { return nil }
        metrics.add(.unauthorized)
        var response = json(.unauthorized, ["error": "missing or wrong bearer token"])
        response.headers[.wwwAuthenticate] = "Bearer"
        return response
    }

    /// `text` escaped for the inside of a JSON string.
    static func jsonEscaped(_ text: String) -> String {
        // Alert ids (hex digits, Falcosidekick's uuids) need no escaping: answered as they are,
        // without a walk over their scalars (~1 µs of every 200).
        if !text.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            return text
        }
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                    + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func json(_ status: HTTPResponse.Status, _ object: [String: any Sendable]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
