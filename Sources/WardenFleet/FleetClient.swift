// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import WardenCore

/// One output's HTTP client: keep-alive connections, its timeout, its TLS (mutual when it has a
/// certificate) and its headers.
public final class FleetClient: Sendable {
    public let output: FleetOutput
    private let client: HTTPClient
    private let eventLoopGroup: any EventLoopGroup
    private let headers: [(String, String)]

    /// Why an output cannot be used, in one line.
    public struct SetupError: Error, CustomStringConvertible {
        public var description: String
    }

    /// How many requests one output has in flight at most.
    public static let parallelRequests = 16

    /// - Parameter eventLoopGroup: where its connections run (the forwarder gives it a thread of
    ///   its own, at a lower priority than the intake's).
    public init(_ output: FleetOutput, eventLoopGroup: any EventLoopGroup = HTTPClient.defaultEventLoopGroup)
        throws(SetupError)
    {
        self.output = output
        var headers: [(String, String)] = [("Content-Type", "application/json"), ("User-Agent", "shmwarden")]
        if let tokenFile = output.tokenFile {
            guard let token = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
                throw SetupError(description: "output \(output.name): cannot read token-file \(tokenFile)")
            }
            let trimmed = token.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty, !trimmed.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
                throw SetupError(description: "output \(output.name): token-file \(tokenFile) holds no one-line token")
            }
            headers.append(("Authorization", "Bearer \(trimmed)"))
        }
        headers += output.headers.map { ($0.name, $0.value) }
        self.headers = headers
        var tls: TLSConfiguration?
        if output.url.lowercased().hasPrefix("https://") {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.minimumTLSVersion = .tlsv12
            do {
                if let ca = output.caFile {
                    configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
                }
                if let certificate = output.certificateFile, let key = output.keyFile {
                    configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map {
                        .certificate($0)
                    }
                    configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
                }
            } catch {
                throw SetupError(description: "output \(output.name): its TLS files cannot be used: \(error)")
            }
            tls = configuration
        }
        let timeout = TimeAmount.seconds(output.timeoutSeconds)
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: tls, redirectConfiguration: .disallow,
            timeout: .init(connect: min(timeout, .seconds(5)), read: timeout),
            connectionPool: .init(
                idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: Self.parallelRequests))
        configuration.httpVersion = .http1Only
        // A refused or failed connection fails its request at once: the forwarder's own backoff
        // decides when to try again (the pool's retries would hold each request to its timeout).
        configuration.connectionPool.retryConnectionEstablishment = false
        self.eventLoopGroup = eventLoopGroup
        client = HTTPClient(eventLoopGroup: eventLoopGroup, configuration: configuration)
    }

    /// Posts one event's JSON and says what the answer means for it.
    public func post(_ body: String) async -> (DeliveryOutcome, status: Int?) {
        let loop = eventLoopGroup.next()
        let answer = send(body, on: loop)
        do {
            let response = try await answer.get()
            return (Self.outcome(response), Int(response.status.code))
        } catch {
            return (.retry("\(error)"), nil)
        }
    }

    /// Posts each of `bodies`, `parallelRequests` at a time, and returns what each answer means,
    /// in order. Everything per request runs on the client's event loop: a caller awaits once
    /// for the whole batch.
    public func post(_ bodies: [String]) async -> [DeliveryOutcome] {
        guard !bodies.isEmpty else { return [] }
        let loop = eventLoopGroup.next()
        let promise = loop.makePromise(of: [DeliveryOutcome].self)
        loop.execute {
            let batch = NIOLoopBoundBox(
                BatchState(outcomes: Array(repeating: nil, count: bodies.count)), eventLoop: loop)
            func start() {
                let index = batch.value.next
                batch.value.next += 1
                self.send(bodies[index], on: loop).hop(to: loop).whenComplete { result in
                    switch result {
                    case .success(let response): batch.value.outcomes[index] = Self.outcome(response)
                    case .failure(let error): batch.value.outcomes[index] = .retry("\(error)")
                    }
                    batch.value.done += 1
                    if batch.value.next < bodies.count { start() }
                    if batch.value.done == bodies.count {
                        promise.succeed(batch.value.outcomes.map { $0 ?? .retry("no answer") })
                    }
                }
            }
            for _ in 0..<min(Self.parallelRequests, bodies.count) { start() }
        }
        return (try? await promise.futureResult.get()) ?? bodies.map { _ in .retry("cancelled") }
    }

    private struct BatchState {
        var outcomes: [DeliveryOutcome?]
        var next = 0
        var done = 0
    }

    /// One POST on whichever of the client's loops has a connection free (`loop` makes a failed
    /// future when the request cannot be built).
    private func send(_ body: String, on loop: any EventLoop) -> EventLoopFuture<HTTPClient.Response> {
        do {
            var headers = HTTPHeaders()
            for (name, value) in self.headers { headers.add(name: name, value: value) }
            let request = try HTTPClient.Request(
                url: output.url, method: .POST, headers: headers, body: .byteBuffer(ByteBuffer(string: body)))
            // What a receiver answers is read up to 64 KiB: Falcosidekick's answers are a few bytes.
            return client.execute(
                request: request, delegate: ResponseAccumulator(request: request, maxBodySize: 64 << 10),
                eventLoop: .indifferent, deadline: .now() + .seconds(output.timeoutSeconds)
            ).futureResult
        } catch {
            return loop.makeFailedFuture(error)
        }
    }

    private static func outcome(_ response: HTTPClient.Response) -> DeliveryOutcome {
        let text = response.body.map { String(buffer: $0) }?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        return DeliveryOutcome(status: Int(response.status.code), body: String(text.prefix(200)))
    }

    public func shutdown() async {
        try? await client.shutdown()
    }
}
