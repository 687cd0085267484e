// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import Synchronization
import WardenCore
import WardenHTTP

/// A stand-in for Falcosidekick's input on loopback: it answers `POST /` as Falcosidekick does
/// (400 for an event it would refuse, 200 otherwise) and keeps what it took, by event id. It can
/// be stopped and started again on the same port, ask for a bearer token, and serve TLS with
/// client certificates required.
final class FalcoReceiver: Sendable {
    struct Taken: Sendable {
        /// Deliveries per `shmwarden.event_id`.
        var deliveries: [String: Int] = [:]
        /// The first delivery of each id, parsed.
        var events: [String: [String: any Sendable]] = [:]
        var refused: [String] = []
        var unauthorized = 0
    }

    private let state = Mutex(Taken())
    private let running = Mutex<Task<Void, any Error>?>(nil)
    private let boundPort = Mutex<Int>(0)
    private let token: String?
    private let tls: IntakeTLSContext?

    init(token: String? = nil, tls: IntakeTLSContext? = nil) {
        self.token = token
        self.tls = tls
    }

    var port: Int { boundPort.withLock { $0 } }
    var url: String { "\(tls == nil ? "http" : "https")://127.0.0.1:\(port)/" }
    var taken: Taken { state.withLock { $0 } }

    /// Every event taken, each once, oldest id order not kept.
    var events: [[String: any Sendable]] { state.withLock { Array($0.events.values) } }

    /// Listens (on the port it had before, or a free one the first time) until `stop`.
    func start() async throws {
        let router = Router()
        router.post("/") { [self] request, context -> Response in
            if let token, request.headers[.authorization] != "Bearer \(token)" {
                state.withLock { $0.unauthorized += 1 }
                return Response(status: .unauthorized)
            }
            let body = try await request.body.collect(upTo: 4 << 20)
            let data = Data(buffer: body)
            if let refusal = FalcosidekickAcceptance.refusal(data) {
                state.withLock { $0.refused.append(refusal) }
                return Response(
                    status: .badRequest, body: .init(byteBuffer: ByteBuffer(string: "{\"error\":\"\(refusal)\"}")))
            }
            let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
            let fields = object["output_fields"] as? [String: Any] ?? [:]
            let id = fields["shmwarden.event_id"] as? String ?? "?"
            let event: [String: any Sendable] = [
                "rule": object["rule"] as? String ?? "", "priority": object["priority"] as? String ?? "",
                "source": object["source"] as? String ?? "", "hostname": object["hostname"] as? String ?? "",
                "output": object["output"] as? String ?? "", "uuid": object["uuid"] as? String ?? "",
                "type": fields["shmwarden.event_type"] as? String ?? "",
                "fields": String(
                    decoding: (try? JSONSerialization.data(withJSONObject: fields)) ?? Data(), as: UTF8.self),
            ]
            state.withLock { taken in
                taken.deliveries[id, default: 0] += 1
                if taken.events[id] == nil { taken.events[id] = event }
            }
            return Response(status: .ok)
        }
        let previous = port
        let ready = Mutex<CheckedContinuation<Void, Never>?>(nil)
        let app = Application(
            router: router, server: IntakeServerConfiguration.tcpServer(tls: tls),
            configuration: .init(address: .hostname("127.0.0.1", port: previous)),
            onServerRunning: { [self] channel in
                boundPort.withLock { $0 = channel.localAddress?.port ?? previous }
                ready.withLock { $0?.resume() }
                ready.withLock { $0 = nil }
            },
            logger: Logger(label: "receiver", factory: { _ in SwiftLogNoOpLogHandler() }))
        await withCheckedContinuation { continuation in
            ready.withLock { $0 = continuation }
            running.withLock { $0 = Task { try await app.runService(gracefulShutdownSignals: []) } }
        }
    }

    /// Stops listening; connections open to it are closed.
    func stop() async {
        guard
            let task = running.withLock({ task in
                defer { task = nil }; return task
            })
        else { return }
        task.cancel()
        _ = try? await task.value
    }

    /// Waits until `condition` holds for what was taken (`timeout` at most); returns whether it did.
    func wait(timeout: Duration = .seconds(30), _ condition: (Taken) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !condition(taken) {
            if ContinuousClock.now > deadline { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }
}
