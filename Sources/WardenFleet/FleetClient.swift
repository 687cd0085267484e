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
    private let headers: [(String, String)]

    /// Why an output cannot be used, in one line.
    public struct SetupError: Error, CustomStringConvertible {
        public var description: String
    }

    /// How many requests one output has in flight at most.
    public static let parallelRequests = 16

    public init(_ output: FleetOutput) throws(SetupError) {
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
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    /// Posts one event's JSON and says what the answer means for it.
    public func post(_ body: String) async -> (DeliveryOutcome, status: Int?) {
        var request = HTTPClientRequest(url: output.url)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: body))
        do {
            let response = try await client.execute(request, timeout: .seconds(output.timeoutSeconds))
            let answer = try await response.body.collect(upTo: 4096)
            let text = String(buffer: answer).trimmingCharacters(in: .whitespacesAndNewlines)
            let status = Int(response.status.code)
            return (DeliveryOutcome(status: status, body: String(text.prefix(200))), status)
        } catch {
            return (.retry("\(error)"), nil)
        }
    }

    public func shutdown() async {
        try? await client.shutdown()
    }
}
