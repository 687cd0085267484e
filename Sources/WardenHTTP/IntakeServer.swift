// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import WardenCore
import WardenIntake
import WardenStore

/// How the HTTP intake listens and what it accepts.
///
/// The TCP listener speaks TLS and authenticates its clients by certificate (mutual TLS) unless
/// `insecure` says plainly that it need not; the unix socket authenticates by the peer's
/// credentials; a bearer token serves clients that send headers (Falcosidekick).
public struct IntakeServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Also listen on this unix socket (mode 0600) when set.
    public var unixSocketPath: String?
    /// Who may post on the unix socket besides root.
    public var unixSocketPeers: UnixPeerPolicy
    /// The bearer token (`Authorization: Bearer <token>`), when one is configured: on the TLS
    /// listener it stands in for a client certificate; on a plain one it is required.
    public var bearerToken: String?
    /// TLS on the TCP listener. Nil only with `insecure`.
    public var tls: IntakeTLS?
    /// Plain HTTP on the TCP listener (`intake.insecure: true`): alerts without a token are
    /// stored, but trigger nothing beyond `record` and `advise-noexec`.
    public var insecure: Bool
    /// Larger bodies get 413.
    public var bodyLimit: Int

    public init(
        host: String = "127.0.0.1", port: Int = 2804, unixSocketPath: String? = nil,
        unixSocketPeers: UnixPeerPolicy = UnixPeerPolicy(), bearerToken: String? = nil, tls: IntakeTLS? = nil,
        insecure: Bool = false, bodyLimit: Int = 1 << 20
    ) {
        self.host = host
        self.port = port
        self.unixSocketPath = unixSocketPath
        self.unixSocketPeers = unixSocketPeers
        self.bearerToken = bearerToken
        self.tls = tls
        self.insecure = insecure
        self.bodyLimit = bodyLimit
    }

    /// Why this configuration cannot serve, or nil.
    public var problem: String? {
        if tls == nil && !insecure {
            return "the intake needs TLS (intake.certificate, intake.key, intake.client-ca; `shmwarden certs init` "
                + "makes them) or, to serve plain HTTP, intake.insecure: true"
        }
        if tls != nil && insecure { return "intake.insecure and TLS settings exclude each other" }
        if tls?.clientCertificates == .optional && bearerToken == nil {
            return "intake.client-certificates: optional needs a token-file: a client without a certificate must "
                + "send the token"
        }
        return nil
    }
}

/// What a request proved about its sender.
public enum RequestAuthentication: Sendable, Equatable {
    case authenticated(via: String)
    /// Allowed in only by `intake.insecure`: stored, never acted on beyond record and advise.
    case unauthenticated
    /// 401, with the reason.
    case refused(String)

    /// The sender to store with an alert; nil when refused.
    public var sender: AlertSender? {
        switch self {
        case .authenticated(let via): AlertSender(authenticated: true, via: via)
        case .unauthenticated: AlertSender(authenticated: false, via: "unauthenticated (intake.insecure)")
        case .refused: nil
        }
    }

    /// Decides from what the connection proved and the request's `Authorization` header.
    ///
    /// A wrong token is refused even where no token is needed: it is someone guessing.
    public static func decide(peer: ConnectionPeer.Kind?, certificate: String?, authorization: String?, token: String?)
        -> RequestAuthentication
    {
        let presented = authorization.flatMap { header -> String? in
            header.hasPrefix("Bearer ") ? String(header.dropFirst(7)) : header
        }
        if let presented {
            guard let token, ConstantTime.equal(presented, token) else { return .refused("wrong bearer token") }
        }
        if let certificate { return .authenticated(via: "mtls \(certificate)") }
        if case .unix(let uid, _, let pid)? = peer { return .authenticated(via: "unix peer uid \(uid) pid \(pid)") }
        if presented != nil { return .authenticated(via: "bearer token") }
        if token != nil { return .refused("missing bearer token") }
        if case .plain? = peer { return .unauthenticated }
        return .refused("no client certificate")
    }
}

/// Comparison whose time depends on the lengths only, not on where the texts differ.
enum ConstantTime {
    static func equal(_ lhs: String, _ rhs: String) -> Bool {
        let a = Array(lhs.utf8)
        let b = Array(rhs.utf8)
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for index in 0..<max(a.count, b.count) {
            let x = index < a.count ? a[index] : 0
            let y = index < b.count ? b[index] : 0
            difference |= x ^ y
        }
        return difference == 0 && a.count == b.count
    }
}

extension IntakeServerConfiguration {
    /// The HTTP/1 server of the TCP listener: TLS with `context`, or plain when insecure.
    public static func tcpServer(tls context: IntakeTLSContext?) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            IntakeChannel(base: HTTP1Channel(responder: responder), guarding: context.map { .tls($0) } ?? .plain)
        }
    }

    /// The HTTP/1 server of the unix socket: peers are checked by their credentials.
    public static func unixServer(peers: UnixPeerPolicy, logger: Logger) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            IntakeChannel(base: HTTP1Channel(responder: responder), guarding: .unix(peers, logger: logger))
        }
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
            Response(
                status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        // Counters and gauges only: no paths, command lines or ids, so it stays open to scrapers.
        router.get("/metrics") { _, _ in
            let text = intake.metrics.prometheusText() + extraMetrics()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        if let report {
            router.get("/alerts/:id/report") { request, context in
                let (authentication, denied) = authenticate(
                    request, configuration: configuration, metrics: intake.metrics)
                if let denied { return denied }
                guard case .authenticated = authentication else {
                    intake.metrics.add(.unauthorized)
                    return json(.unauthorized, ["error": "reports need an authenticated client (certificate or token)"])
                }
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
                } catch is WorkPool.Busy {
                    var response = json(.serviceUnavailable, ["error": "too many reports are being built; retry"])
                    response.headers[.retryAfter] = "1"
                    return response
                } catch {
                    return json(.internalServerError, ["error": "the report could not be built: \(error)"])
                }
            }
        }
        return router
    }

    static func receive(_ request: Request, intake: AlertIntake, configuration: IntakeServerConfiguration) async
        -> Response
    {
        let (authentication, denied) = authenticate(request, configuration: configuration, metrics: intake.metrics)
        if let denied { return denied }
        guard let sender = authentication.sender else { return json(.unauthorized, ["error": "unauthorized"]) }
        if !sender.authenticated { intake.metrics.add(.unauthenticated) }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: configuration.bodyLimit)
        } catch {
            intake.metrics.add(.tooLarge)
            return json(.contentTooLarge, ["error": "body larger than \(configuration.bodyLimit) bytes"])
        }
        switch await intake.submit(Data(body.readableBytesView), from: sender) {
        case .accepted(let id, let duplicate, _):
            // The hot path: written by hand, JSONSerialization costs more than the rest of the reply.
            // Nothing about what was correlated: a sender could otherwise probe for other users'
            // files by naming paths.
            let text = #"{"duplicate":\#(duplicate),"id":"\#(JSONText.escaped(id))"}"#
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
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

    /// What the request proves, and the 401 to answer when that is nothing acceptable.
    static func authenticate(_ request: Request, configuration: IntakeServerConfiguration, metrics: IntakeMetrics)
        -> (RequestAuthentication, Response?)
    {
        let peer = ConnectionPeer.current
        let authentication = RequestAuthentication.decide(
            peer: peer?.kind, certificate: peer?.certificate, authorization: request.headers[.authorization],
            token: configuration.bearerToken)
        guard case .refused(let reason) = authentication else { return (authentication, nil) }
        metrics.add(.unauthorized)
        var response = json(.unauthorized, ["error": reason])
        response.headers[.wwwAuthenticate] = "Bearer"
        return (authentication, response)
    }

    static func json(_ status: HTTPResponse.Status, _ object: [String: any Sendable]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
