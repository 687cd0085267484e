// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import GRDB
@preconcurrency import Glibc
import Testing
import WardenCore
import WardenDaemon
import WardenHTTP
import WardenStore

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// One HTTP exchange over a real socket.
func post(
    _ url: String, _ body: Data, headers: [String: String] = ["Content-Type": "application/json"]
) async throws -> (Int, [String: Any], [AnyHashable: Any]) {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = "POST"
    request.httpBody = body
    for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
    let (data, response) = try await URLSession.shared.data(for: request)
    let http = response as! HTTPURLResponse
    let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    return (http.statusCode, object, http.allHeaderFields)
}

/// The value of gauge `name` in Prometheus text.
func gauge(_ name: String, in metrics: String) -> Int? {
    metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Int($0.split(separator: " ")[1]) }
}

func get(_ url: String, headers: [String: String] = [:]) async throws -> (Int, String) {
    var request = URLRequest(url: URL(string: url)!)
    for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
    let (data, response) = try await URLSession.shared.data(for: request)
    return ((response as! HTTPURLResponse).statusCode, String(decoding: data, as: UTF8.self))
}

/// An alert for `path` as the "Execution from /dev/shm" rule reports it, at the current time.
func devShmAlert(exepath: String, uuid: String? = nil, time: Date = Date()) -> Data {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    var object: [String: Any] = [
        "rule": "Execution from /dev/shm", "priority": "Warning", "source": "syscall", "hostname": "test-node",
        "time": formatter.string(from: time), "output": "File execution detected from /dev/shm file=\(exepath)",
        "tags": ["T1059.004", "mitre_execution"],
        "output_fields": [
            "proc.exepath": exepath, "fd.name": exepath, "evt.arg.flags": "EXE_WRITABLE", "proc.pid": 4242,
        ],
    ]
    if let uuid { object["uuid"] = uuid }
    return try! JSONSerialization.data(withJSONObject: object)
}

extension AgentIntegration {
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct IntakeTests {
        /// A store that cannot keep up: alerts past its queue get 503 with Retry-After over HTTP,
        /// and every alert answered 200 is stored once the store catches up.
        @Test func aFullStoreQueueAnswers503AndLosesNothingAccepted() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(
                AgentHarness(
                    watch: [mount.path], http: IntakeServerConfiguration(port: 0, insecure: true), storeQueueCapacity: 2
                )
            ) { agent in
                let port = await agent.services.listening.port()
                // Another connection holds SQLite's write lock: the writer waits, its queue fills.
                var lockConfiguration = Configuration()
                lockConfiguration.busyMode = .timeout(10)
                let lock = try DatabaseQueue(path: agent.database.path, configuration: lockConfiguration)
                let release = DispatchSemaphore(value: 0)
                // The lock is held on a thread of its own (GRDB closes a transaction with its access).
                await withCheckedContinuation { (locked: CheckedContinuation<Void, Never>) in
                    Thread {
                        try? lock.inDatabase { db in
                            try db.execute(sql: "BEGIN IMMEDIATE")
                            locked.resume()
                            release.wait()
                            try db.execute(sql: "COMMIT")
                        }
                    }.start()
                }
                let posts = (0..<8).map { index in
                    Task { () -> (Int, String?) in
                        let body = devShmAlert(
                            exepath: mount.child("x\(index)"), uuid: "00000000-0000-4000-8000-00000000000\(index)")
                        let (status, _, headers) = try await post("http://127.0.0.1:\(port)/falco", body)
                        return (status, headers["Retry-After"] as? String)
                    }
                }
                // Once every request has reached the intake (each is counted as it arrives), let
                // the store go on. Meanwhile /metrics says where they wait: the full store queue.
                var waitingMetrics = ""
                let deadline = ContinuousClock.now + .seconds(20)
                repeat {
                    waitingMetrics = try await get("http://127.0.0.1:\(port)/metrics").1
                    if gauge("shmwarden_alerts_received_total", in: waitingMetrics) == posts.count,
                        gauge("shmwarden_store_queue_depth", in: waitingMetrics).map({ $0 >= 1 }) == true
                    {
                        break
                    }
                    try await Task.sleep(for: .milliseconds(10))
                } while ContinuousClock.now < deadline
                let depth = gauge("shmwarden_store_queue_depth", in: waitingMetrics)
                #expect(depth.map { $0 >= 1 } == true, "\(depth.map(String.init) ?? "none")")
                release.signal()
                var answers: [(Int, String?)] = []
                for task in posts { answers.append(try await task.value) }
                let busy = answers.filter { $0.0 == 503 }
                let accepted = answers.filter { $0.0 == 200 }
                #expect(!busy.isEmpty, "\(answers.map(\.0))")
                #expect(busy.allSatisfy { $0.1 == "1" }, "503 carries Retry-After")
                #expect(accepted.count + busy.count == answers.count, "\(answers.map(\.0))")
                #expect(try agent.database.alertCount() == accepted.count, "every 200 is stored, nothing else")
            }
        }

        @Test func alertsAreStoredAndCorrelatedWithTheDroppedFile() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(
                AgentHarness(
                    watch: [mount.path], http: IntakeServerConfiguration(port: 0, insecure: true))
            ) { agent in
                let port = await agent.services.listening.port()
                let path = mount.child("dropper")
                let sha = try drop(trueBinary, at: path)
                try await agent.waitForFiles { $0.contains { $0.path == PathBytes(path) } }
                _ = unlink(path)

                let alertBody = devShmAlert(exepath: path)
                let (status, body, _) = try await post("http://127.0.0.1:\(port)/falco", alertBody)
                #expect(status == 200)
                let id = try #require(body["id"] as? String)
                // The answer tells the sender nothing about the host's files, whoever it is.
                #expect(body["correlations"] == nil)
                #expect(body["duplicate"] as? Bool == false)
                let stored = try #require(try agent.database.alert(id: id))
                #expect(stored.correlations.first?.sha256 == sha)
                #expect(stored.correlations.first?.matchedBy.contains("proc.exepath") == true)

                // The same delivery again (Falco retries, or two outputs): stored once.
                let (again, againBody, _) = try await post("http://127.0.0.1:\(port)/", alertBody)
                #expect(again == 200)
                #expect(againBody["duplicate"] as? Bool == true)
                #expect(try agent.database.alertCount() == 1)

                let (health, healthText) = try await get("http://127.0.0.1:\(port)/healthz")
                #expect(health == 200 && healthText == "ok\n")
                let (metricsStatus, metrics) = try await get("http://127.0.0.1:\(port)/metrics")
                #expect(metricsStatus == 200)
                #expect(metrics.contains("shmwarden_alerts_received_total 2"))
                #expect(metrics.contains("shmwarden_alerts_duplicate_total 1"))
                #expect(metrics.contains("shmwarden_sensor_executables_recorded"))
                // Both histograms: the two alerts' intake, the dropper's capture.
                #expect(metrics.contains("# TYPE shmwarden_alert_intake_seconds histogram\n"))
                #expect(metrics.contains("shmwarden_alert_intake_seconds_count 1\n"), "the repeat is not timed")
                #expect(metrics.contains("# TYPE shmwarden_file_capture_seconds histogram\n"))
                #expect(metrics.contains("shmwarden_file_capture_seconds_bucket{le=\"+Inf\"} 1\n"))
                #expect(metrics.contains("shmwarden_file_capture_seconds_count 1\n"))
                for gauge in [
                    "store_queue_depth", "store_sync_waiting", "capture_queue_depth", "evidence_queue_depth",
                    "alerts_waiting_for_evidence",
                    "response_queue_depth", "sandbox_queue_depth",
                ] {
                    #expect(metrics.contains("# TYPE shmwarden_\(gauge) gauge\nshmwarden_\(gauge) 0\n"), "\(gauge)")
                }
                // Every metric says what it is: a HELP line right before its TYPE line.
                let lines = metrics.split(separator: "\n")
                for (index, line) in lines.enumerated() where line.hasPrefix("# TYPE ") {
                    let name = line.split(separator: " ")[2]
                    #expect(index > 0 && lines[index - 1].hasPrefix("# HELP \(name) "), "\(name) has no HELP line")
                }
                #expect(lines.filter { $0.hasPrefix("# TYPE ") }.count > 40)
            }
        }

        /// An alert about a file never recorded waits for it (looked at again after 0.25 s and
        /// 2 s more), and /metrics counts it while it waits.
        @Test func theAlertsWaitingForTheirFileAreCounted() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(
                AgentHarness(
                    watch: [mount.path], http: IntakeServerConfiguration(port: 0, insecure: true))
            ) { agent in
                let port = await agent.services.listening.port()
                func waiting() async throws -> Int? {
                    gauge(
                        "shmwarden_alerts_waiting_for_evidence", in: try await get("http://127.0.0.1:\(port)/metrics").1
                    )
                }
                #expect(try await waiting() == 0)
                let (status, body, _) = try await post(
                    "http://127.0.0.1:\(port)/falco", devShmAlert(exepath: mount.child("never-dropped")))
                #expect(status == 200 && body["correlations"] == nil)
                #expect(try await waiting() == 1)
                let deadline = ContinuousClock.now + .seconds(10)
                while try await waiting() != 0 && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(try await waiting() == 0, "the alert still waits after its last look")
            }
        }

        @Test func aSenderChosenIdComesBackAsValidJSON() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(
                AgentHarness(
                    watch: [mount.path], http: IntakeServerConfiguration(port: 0, insecure: true))
            ) { agent in
                let port = await agent.services.listening.port()
                let hostile = "id \"with\" \\ quotes\nand a newline \u{1}"
                let (status, body, _) = try await post(
                    "http://127.0.0.1:\(port)/falco", devShmAlert(exepath: "/dev/shm/q", uuid: hostile))
                #expect(status == 200)
                #expect(body["id"] as? String == hostile)
                #expect(try agent.database.alert(id: hostile) != nil)
            }
        }

        @Test func badRequestsGetClearErrors() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(
                AgentHarness(
                    watch: [mount.path], http: IntakeServerConfiguration(port: 0, insecure: true, bodyLimit: 4096))
            ) { agent in
                let port = await agent.services.listening.port()
                let url = "http://127.0.0.1:\(port)/falco"
                let (malformed, malformedBody, _) = try await post(url, Data("{not json".utf8))
                #expect(malformed == 400)
                #expect((malformedBody["error"] as? String)?.contains("malformed") == true)
                let (missing, missingBody, _) = try await post(
                    url, Data(#"{"rule":"r","time":"2026-11-29T12:00:00Z"}"#.utf8))
                #expect(missing == 400)
                #expect(missingBody["error"] as? String == "missing \"priority\"")
                let (large, _, _) = try await post(url, Data(repeating: UInt8(ascii: "a"), count: 8192))
                #expect(large == 413)
                let (empty, emptyBody, _) = try await post(url, Data())
                #expect(empty == 400)
                #expect((emptyBody["error"] as? String)?.hasPrefix("empty body") == true)
                // Another method on an intake path says which one to use.
                for path in ["/falco", "/"] {
                    let (data, response) = try await URLSession.shared.data(
                        for: URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!))
                    let answer = try #require(response as? HTTPURLResponse)
                    #expect(answer.statusCode == 405)
                    #expect(answer.value(forHTTPHeaderField: "Allow") == "POST")
                    #expect(String(decoding: data, as: UTF8.self).contains("POST"))
                }
                #expect(try agent.database.alertCount() == 0)
            }
        }

        @Test func aTokenIsRequiredWhenConfigured() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(
                AgentHarness(
                    watch: [mount.path], http: IntakeServerConfiguration(port: 0, bearerToken: "s3cret", insecure: true)
                )
            ) { agent in
                let port = await agent.services.listening.port()
                let url = "http://127.0.0.1:\(port)/falco"
                let (none, _, _) = try await post(url, devShmAlert(exepath: "/dev/shm/x"))
                #expect(none == 401)
                let (wrong, _, _) = try await post(
                    url, devShmAlert(exepath: "/dev/shm/x"), headers: ["Authorization": "Bearer nope"])
                #expect(wrong == 401)
                // Metrics stay open: counters only, nothing about files, processes or alerts.
                let (metrics, text) = try await get("http://127.0.0.1:\(port)/metrics")
                #expect(metrics == 200)
                #expect(!text.contains("/dev/shm") && !text.contains(mount.path))
                #expect(gauge("shmwarden_intake_insecure", in: text) == 1)
                let (right, _, _) = try await post(
                    url, devShmAlert(exepath: "/dev/shm/x"), headers: ["Authorization": "Bearer s3cret"])
                #expect(right == 200)
                #expect(try agent.database.alertCount() == 1)
            }
        }

        @Test func aLateFileIsCorrelatedWhenItArrives() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            try await withAgent(
                AgentHarness(
                    watch: [mount.path], http: IntakeServerConfiguration(port: 0, insecure: true))
            ) { agent in
                let port = await agent.services.listening.port()
                let path = mount.child("late")
                // The alert first (Falco was faster than our sensor), then the file.
                let (status, body, _) = try await post("http://127.0.0.1:\(port)/falco", devShmAlert(exepath: path))
                #expect(status == 200)
                let id = try #require(body["id"] as? String)
                #expect(try agent.database.alert(id: id)?.noEvidenceReason == .neverSeen)
                let sha = try drop(trueBinary + [8], at: path)
                let deadline = ContinuousClock.now + .seconds(10)
                var correlated: AlertRecord?
                while ContinuousClock.now < deadline {
                    correlated = try agent.database.alert(id: id)
                    if correlated?.correlations.isEmpty == false { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(correlated?.correlations.first?.sha256 == sha)
                #expect(correlated?.noEvidenceReason == nil)
            }
        }

        @Test func unixSocketListenerIsPrivate() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            let socketPath = NSTemporaryDirectory() + "shmwarden-\(UUID().uuidString.prefix(8)).sock"
            defer { unlink(socketPath) }
            try await withAgent(
                AgentHarness(
                    watch: [mount.path],
                    http: IntakeServerConfiguration(port: 0, unixSocketPath: socketPath, insecure: true))
            ) { agent in
                _ = await agent.services.listening.port()
                let deadline = ContinuousClock.now + .seconds(10)
                while !FileManager.default.fileExists(atPath: socketPath) && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                try await Task.sleep(for: .milliseconds(100))
                let mode = try FileManager.default.attributesOfItem(atPath: socketPath)[.posixPermissions] as? Int
                #expect(mode == 0o600)
                let body = String(decoding: devShmAlert(exepath: "/dev/shm/via-socket"), as: UTF8.self)
                let (status, output) = try await runProcessOffPool(
                    "/usr/bin/curl",
                    [
                        "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", socketPath,
                        "-H", "Content-Type: application/json", "--data", body, "http://localhost/falco",
                    ])
                #expect(status == 0)
                #expect(output == "200")
                #expect(try agent.database.alertCount() == 1)
            }
        }
    }
}
