// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Synchronization
import Testing
import WardenCore
import WardenDaemon
import WardenHTTP
import WardenStore
import WardenTestSupport

/// curl (the libcurl Falco's http_output uses), as root or as `nobody`: the HTTP status, or nil
/// when no HTTP answer came (a refused handshake, a closed connection).
private func curl(_ arguments: [String], asNobody: Bool = false) async throws -> (status: Int?, body: String) {
    let command = ["-s", "-w", "\n%{http_code}", "--max-time", "10"] + arguments
    let (_, output) =
        asNobody
        ? try await runProcessOffPool(
            "/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/curl"] + command)
        : try await runProcessOffPool("/usr/bin/curl", command)
    let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
    let code = lines.last.flatMap { Int($0) } ?? 0
    return (code == 0 ? nil : code, lines.dropLast().joined(separator: "\n"))
}

/// A file of `body` any user may read, for `--data-binary @file`.
private func bodyFile(_ body: Data) throws -> String {
    let path = "/tmp/shmwarden-body-\(UUID().uuidString.prefix(8)).json"
    try body.write(to: URL(fileURLWithPath: path))
    chmod(path, 0o644)
    return path
}

private func alert(rule: String = "Execution from /dev/shm", time: String? = nil, fields: [String: Any]) -> Data {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    let object: [String: Any] = [
        "rule": rule, "priority": "Critical", "source": "syscall", "hostname": "test-node",
        "time": time ?? formatter.string(from: Date()), "output": "forged \(UUID())", "output_fields": fields,
    ]
    return try! JSONSerialization.data(withJSONObject: object)
}

extension AgentIntegration {
    @Suite(
        .serialized, .timeLimit(.minutes(3)),
        .enabled(if: TestEnvironment.isRoot, "certificates in /tmp, setpriv, a tmpfs"))
    struct TrustBoundaryTests {
        /// `shmwarden run` with mutual TLS, as installed: certificates from `certs init`, the
        /// client refused without one, a rotation under SIGHUP that loses no alert.
        @Test func mutualTLSAdmitsOnlyTheAgentsClientsAndRotatesWithoutLoss() async throws {
            try #require(Binary.exists, "build first: swift build")
            let mount = try TestMount()
            let state = makeStateDirectory()
            let tls = state + "-tls"
            let otherCA = state + "-other-ca"
            let logFile = state + "-log.txt"
            let tokenFile = state + "-token"
            defer {
                mount.remove()
                for path in [state, tls, otherCA, logFile, tokenFile] {
                    try? FileManager.default.removeItem(atPath: path)
                }
            }
            let (initStatus, printed, _) = try Binary.run(["certs", "init", "--directory", tls])
            #expect(initStatus == 0)
            #expect(printed.contains("mtls: true") && printed.contains("client_cert: \"\(tls)/clients/falco.crt\""))
            #expect(
                printed.contains("ca_cert: \"\(tls)/ca.crt\"")
                    && printed.contains("url: \"https://127.0.0.1:2804/falco\""))
            for key in ["ca.key", "server.key", "clients/falco.key", "clients/falcosidekick.key"] {
                let status = try #require(lstatOf(Array("\(tls)/\(key)".utf8)))
                #expect(status.st_mode & 0o777 == 0o600 && status.st_uid == 0, "\(key)")
            }
            _ = try Binary.run(["certs", "init", "--directory", otherCA])
            try "s3cret\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
            let agent = try AgentProcess(
                [
                    "--no-discover", "--watch", mount.path, "--listen", "127.0.0.1:0", "--state-dir", state,
                    "--tls-directory", tls, "--token-file", tokenFile, "--log-level", "info",
                ], logFile: logFile)
            defer { agent.kill9() }
            let port = try #require(try await agent.httpPort())
            let url = "https://127.0.0.1:\(port)/falco"
            let body = try bodyFile(alert(fields: ["proc.exepath": "/dev/shm/x", "proc.pid": 4242]))
            defer { unlink(body) }
            let trust = ["--cacert", "\(tls)/ca.crt"]
            func client(_ directory: String, _ name: String = "falco") -> [String] {
                ["--cert", "\(directory)/clients/\(name).crt", "--key", "\(directory)/clients/\(name).key"]
            }

            #expect(try await curl(trust + ["--data-binary", "@\(body)", url]).status == nil, "no client certificate")
            #expect(
                try await curl(trust + client(otherCA) + ["--data-binary", "@\(body)", url]).status == nil,
                "another CA's client")
            #expect(
                try await curl(["--data-binary", "@\(body)", "http://127.0.0.1:\(port)/falco"]).status == nil,
                "plain HTTP")
            let accepted = try await curl(trust + client(tls) + ["--data-binary", "@\(body)", url])
            #expect(accepted.status == 200, "\(accepted.body)")
            #expect(
                try await curl(trust + client(tls, "falcosidekick") + ["--data-binary", "@\(body)", url]).status == 200)
            let wrongToken = try await curl(
                trust + client(tls) + ["-H", "Authorization: Bearer nope", "--data-binary", "@\(body)", url])
            #expect(wrongToken.status == 401 && wrongToken.body.contains("wrong bearer token"))

            // Times no clock of Falco's gives: refused with a reason, and the agent lives on.
            for time in ["1677-09-21T00:12:43Z", "2262-04-11T23:47:14Z", "9999-01-01T00:00:00Z"] {
                let far = try bodyFile(alert(time: time, fields: ["proc.pid": 1]))
                defer { unlink(far) }
                let refused = try await curl(trust + client(tls) + ["--data-binary", "@\(far)", url])
                #expect(
                    refused.status == 400 && refused.body.contains("outside the accepted window"), "\(time): \(refused)"
                )
            }

            // Rotation: new server and client certificates under the same CA, reloaded by SIGHUP
            // while alerts keep coming over the old ones; none is lost. The posting client keeps a
            // copy of its old pair, as a real one would: the rotation rewrites the files under it.
            let oldClient = state + "-old-client"
            try FileManager.default.createDirectory(atPath: oldClient + "/clients", withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: oldClient) }
            for file in ["clients/falco.crt", "clients/falco.key"] {
                try FileManager.default.copyItem(atPath: "\(tls)/\(file)", toPath: "\(oldClient)/\(file)")
            }
            let posting = Task {
                var statuses: [Int?] = []
                for index in 0..<30 {
                    let each = try bodyFile(alert(fields: ["proc.pid": 10_000 + index]))
                    defer { unlink(each) }
                    statuses.append(
                        try await curl(trust + client(oldClient) + ["--data-binary", "@\(each)", url]).status)
                }
                return statuses
            }
            let oldCertificate = try String(contentsOfFile: "\(tls)/server.crt", encoding: .utf8)
            #expect(try Binary.run(["certs", "init", "--directory", tls]).0 == 0)
            #expect(try String(contentsOfFile: "\(tls)/server.crt", encoding: .utf8) != oldCertificate)
            #expect(try await agent.waitForLog("shmwarden running"))
            kill(agent.pid, SIGHUP)
            #expect(try await agent.waitForLog("intake TLS certificates reloaded"))
            let statuses = try await posting.value
            #expect(statuses.allSatisfy { $0 == 200 }, "\(statuses)")
            let served = try await runProcessOffPool(
                "/bin/sh",
                [
                    "-c",
                    "openssl s_client -connect 127.0.0.1:\(port) -cert \(tls)/clients/falco.crt -key \(tls)/clients/falco.key </dev/null 2>/dev/null | openssl x509",
                ])
            #expect(
                served.1.trimmingCharacters(in: .whitespacesAndNewlines)
                    == (try String(contentsOfFile: "\(tls)/server.crt", encoding: .utf8)).trimmingCharacters(
                        in: .whitespacesAndNewlines), "the new certificate is served")
            #expect(try await curl(trust + client(tls) + ["--data-binary", "@\(body)", url]).status == 200)

            agent.kill9()
            let (_, listed, _) = try Binary.run(["alerts", "--state-dir", state, "--json"])
            let alerts = try #require(try JSONSerialization.jsonObject(with: Data(listed.utf8)) as? [[String: Any]])
            #expect(alerts.count == 31, "1 + 30 posted during the rotation")
            #expect(alerts.allSatisfy { $0["authenticated"] as? Bool == true })
            #expect(
                alerts.allSatisfy { ($0["sender"] as? String)?.contains("mtls") == true },
                "\(alerts.map { $0["sender"] ?? "" })")
        }

        /// The unix socket asks the kernel who connected (SO_PEERCRED): root, or a listed uid.
        @Test func theUnixSocketAdmitsOnlyRootAndListedPeers() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            let directory = "/tmp/shmwarden-socket-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
            chmod(directory, 0o755)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let body = try bodyFile(alert(fields: ["proc.exepath": "/dev/shm/x"]))
            defer { unlink(body) }
            for (allowed, nobodyAdmitted) in [(UInt32(12345), false), (UInt32(65534), true)] {
                let socket = directory + "/intake-\(allowed).sock"
                try await withAgent(
                    AgentHarness(
                        watch: [mount.path],
                        http: IntakeServerConfiguration(
                            port: 0, unixSocketPath: socket, unixSocketPeers: UnixPeerPolicy(uids: [allowed]),
                            insecure: true))
                ) { agent in
                    var ready = false
                    for _ in 0..<200 where !ready {
                        ready = access(socket, F_OK) == 0
                        if !ready { try await Task.sleep(for: .milliseconds(10)) }
                    }
                    try #require(ready)
                    let arguments = ["--unix-socket", socket, "--data-binary", "@\(body)", "http://localhost/falco"]
                    let asNobody = try await curl(arguments, asNobody: true)
                    #expect((asNobody.status == 200) == nobodyAdmitted, "nobody with peers \(allowed): \(asNobody)")
                    let asRoot = try await curl(arguments)
                    #expect(asRoot.status == 200, "root: \(asRoot)")
                    let stored = try agent.database.alerts()
                    #expect(stored.count == (nobodyAdmitted ? 1 : 1))  // the same alert twice is one
                    #expect(stored.allSatisfy { $0.sender.authenticated && $0.sender.via.hasPrefix("unix peer uid") })
                }
            }
        }

        /// The forged alert of the issue: a "Fileless execution" naming a root process that runs
        /// a system binary, with proc.exe_ino set to that binary's inode. Sent by `nobody`.
        @Test func aForgedAlertKillsNothing() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            let victim = Process()
            victim.executableURL = URL(fileURLWithPath: "/bin/sleep")
            victim.arguments = ["60"]
            try victim.run()
            defer {
                if victim.isRunning { kill(victim.processIdentifier, SIGKILL) }
                victim.waitUntilExit()
            }
            let inode = try #require(lstatOf(Array("/usr/bin/sleep".utf8))).st_ino
            let forged = try bodyFile(
                alert(
                    rule: "Fileless execution via memfd_create",
                    fields: [
                        "proc.pid": victim.processIdentifier, "container.id": "host", "proc.exe_ino": inode,
                        "proc.exepath": "memfd:x (deleted)", "proc.is_exe_from_memfd": true,
                    ]))
            defer { unlink(forged) }
            let policy = try PolicyParser.merge([
                try PolicyParser.parse(
                    """
                    mode: enforce
                    rules:
                      - name: fileless-memfd
                        match: {rule: Fileless execution via memfd_create, fields: {container.id: host}}
                        actions: [record, {action: kill-process, signal: KILL}]
                    """, file: "p.yaml"
                ).get()
            ]).get()

            func killRow(_ agent: AgentHarness) async throws -> ActionRecord? {
                let deadline = ContinuousClock.now + .seconds(10)
                while ContinuousClock.now < deadline {
                    if let row = try agent.database.actions().first(where: { $0.action == "kill-process" }) {
                        return row
                    }
                    try await Task.sleep(for: .milliseconds(20))
                }
                return nil
            }

            // Plain HTTP (intake.insecure): stored, not acted on, and the audit says why.
            let insecure = try await AgentHarness(
                watch: [mount.path], http: IntakeServerConfiguration(port: 0, insecure: true), policy: policy)
            let insecurePort = await insecure.services.listening.port()
            let sent = try await curl(
                ["--data-binary", "@\(forged)", "http://127.0.0.1:\(insecurePort)/falco"], asNobody: true)
            #expect(sent.status == 200, "\(sent)")
            let unauthenticated = try await killRow(insecure)
            #expect(unauthenticated?.outcome == .skipped)
            #expect(
                unauthenticated?.detail.contains("unauthenticated") == true, "\(unauthenticated?.detail ?? "no row")")
            #expect(try insecure.database.alerts().first?.sender.authenticated == false)
            try await insecure.stop()
            #expect(victim.isRunning)

            // Authenticated (the token), the kernel still has the last word: the process runs a
            // binary shmwarden never captured, so it is not signalled whatever the alert claims.
            let authenticated = try await AgentHarness(
                watch: [mount.path], http: IntakeServerConfiguration(port: 0, bearerToken: "t0ken", insecure: true),
                policy: policy)
            let port = await authenticated.services.listening.port()
            let withToken = try await curl(
                ["-H", "Authorization: Bearer t0ken", "--data-binary", "@\(forged)", "http://127.0.0.1:\(port)/falco"])
            #expect(withToken.status == 200)
            let refused = try await killRow(authenticated)
            #expect(refused?.outcome == .skipped)
            #expect(
                refused?.detail.contains("is not a file shmwarden captured") == true, "\(refused?.detail ?? "no row")")
            try await authenticated.stop()
            #expect(victim.isRunning)

            // Mutual TLS: nobody cannot read the client key, and without it gets no handshake.
            let tls = makeStateDirectory() + "-tls"
            defer { try? FileManager.default.removeItem(atPath: tls) }
            _ = try IntakeCertificates.issue(directory: tls)
            let files = IntakeCertificates.ServerFiles(directory: tls)
            let mutual = try await AgentHarness(
                watch: [mount.path],
                http: IntakeServerConfiguration(
                    port: 0, tls: IntakeTLS(certificate: files.certificate, key: files.key, clientCA: files.clientCA)),
                policy: policy)
            let tlsPort = await mutual.services.listening.port()
            let denied = try await curl(
                [
                    "--cacert", files.clientCA, "--cert", "\(tls)/clients/falco.crt", "--key",
                    "\(tls)/clients/falco.key",
                    "--data-binary", "@\(forged)", "https://127.0.0.1:\(tlsPort)/falco",
                ], asNobody: true)
            #expect(denied.status == nil)
            #expect(try mutual.database.alertCount() == 0)
            try await mutual.stop()
            #expect(victim.isRunning)
        }

        /// A path glob allowlists only what nobody but root could have put there.
        @Test func anAllowlistGlobCountsOnlyWhereRootOwnsThePath() async throws {
            let mount = try TestMount()
            defer { mount.remove() }
            chmod(mount.path, 0o1777)
            let policy = try PolicyParser.merge([
                try PolicyParser.parse(
                    "mode: monitor\nguard: {mode: enforce}\nallowlist: {paths: [\"\(mount.path)/vendor-*/**\"]}\n",
                    file: "guard.yaml"
                ).get()
            ]).get()
            try await withAgent(AgentHarness(watch: [mount.path], policy: policy)) { agent in
                // A directory a user made: the glob matches, and it must not count.
                let hostile = mount.child("vendor-evil")
                mkdir(hostile, 0o755)
                chown(hostile, 65534, 65534)
                _ = try drop(trueBinary + [1], at: hostile + "/tool")
                let (hostileStatus, _, _) = try await runProcessOffPool(
                    "/bin/sh", ["-c", "\"$0\"", hostile + "/tool"], errors: true)
                #expect(hostileStatus == 126, "an exec under a user's directory was allowed by the glob")
                // Root's directory, root's file: the glob counts.
                let vendor = mount.child("vendor-x")
                mkdir(vendor, 0o755)
                _ = try drop(trueBinary + [2], at: vendor + "/tool")
                var vendorStatus: Int32 = -1
                for _ in 0..<50 {
                    vendorStatus = try await runProcessOffPool("/bin/sh", ["-c", "\"$0\"", vendor + "/tool"]).0
                    if vendorStatus == 0 { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(vendorStatus == 0)
                var refusal: ExecRecord?
                for _ in 0..<250 where refusal == nil {
                    refusal = try agent.database.execs().first { $0.path == PathBytes(hostile + "/tool") }
                    if refusal == nil { try await Task.sleep(for: .milliseconds(20)) }
                }
                #expect(refusal?.reason.contains("does not count") == true, "\(refusal?.reason ?? "no record")")
            }
        }
    }
}

extension AgentIntegration.CommandLineTests {
    /// Whoever can write the followed file can write alerts as Falco: only root's may be followed.
    @Test func ingestFollowRefusesAFileOthersCanWrite() throws {
        try #require(Binary.exists, "build first: swift build")
        let state = makeStateDirectory()
        let directory = state + "-logs"
        defer { for path in [state, directory] { try? FileManager.default.removeItem(atPath: path) } }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        chmod(directory, 0o755)
        let file = directory + "/events.json"
        try Data().write(to: URL(fileURLWithPath: file))
        chmod(file, 0o666)
        var (status, _, errors) = try Binary.run(["ingest", "--follow", file, "--state-dir", state])
        #expect(
            status == 2 && errors.contains("refusing to follow") && errors.contains("writable by group or others"),
            "\(errors)")
        chmod(file, 0o644)
        chmod(directory, 0o777)
        (status, _, errors) = try Binary.run(["ingest", "--follow", file, "--state-dir", state])
        #expect(status == 2 && errors.contains("below the mount's root is writable by group or others"), "\(errors)")
    }

    /// A newline in a name and the four characters `\x0a` are different names in JSON too.
    @Test func filesJSONCarriesExactNames() throws {
        try #require(Binary.exists, "build first: swift build")
        let mount = try TestMount()
        let state = makeStateDirectory()
        defer {
            mount.remove()
            try? FileManager.default.removeItem(atPath: state)
        }
        _ = try drop(trueBinary + [7], at: mount.child("new\nline"))
        _ = try drop(trueBinary + [8], at: mount.child("new\\x0aline"))
        _ = try drop(trueBinary + [9], at: Array(mount.child("bad").utf8) + [0xff])
        #expect(try Binary.run(["scan", "--state-dir", state, "--no-discover", "--watch", mount.path]).0 == 0)
        let (_, out, _) = try Binary.run(["files", "--state-dir", state, "--json"])
        let records = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]])
        let paths = Set(records.compactMap { $0["path"] as? String })
        #expect(paths.contains(mount.child("new\nline")))
        #expect(paths.contains(mount.child("new\\x0aline")))
        let invalid = records.first { $0["pathBase64"] != nil }
        #expect(
            (invalid?["pathBase64"] as? String).flatMap { Data(base64Encoded: $0) }
                == Data(Array(mount.child("bad").utf8) + [0xff]))
        #expect(records.filter { $0["pathBase64"] != nil }.count == 1)
    }
}

extension AgentIntegration.TrustBoundaryTests {
    /// A thousand report requests at once: a fixed pool builds them, the rest wait or get 503
    /// with Retry-After; the agent's threads stay bounded. The agent runs as its own process, so
    /// its thread count is its own and not that of the tests running beside this one.
    @Test func aFloodOfReportRequestsIsBounded() async throws {
        let mount = try TestMount()
        let state = "/tmp/shmwarden-flood-\(getpid())"
        let logFile = state + ".log"
        let tokenFile = state + "-token"
        defer {
            mount.remove()
            for path in [state, logFile, tokenFile] { try? FileManager.default.removeItem(atPath: path) }
        }
        try "t0ken\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let agent = try AgentProcess(
            [
                "--no-discover", "--watch", mount.path, "--listen", "127.0.0.1:0", "--insecure", "--token-file",
                tokenFile, "--state-dir", state, "--log-level", "info",
            ], logFile: logFile)
        defer { agent.kill9() }
        let port = try #require(try await agent.httpPort())
        let token = ["Authorization": "Bearer t0ken"]
        let (status, body, _) = try await post(
            "http://127.0.0.1:\(port)/falco", devShmAlert(exepath: mount.child("x")), headers: token)
        #expect(status == 200)
        let id = try #require(body["id"] as? String)
        let tasks = "/proc/\(agent.pid)/task"
        func threads() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: tasks).count) ?? 0 }
        let before = threads()
        #expect(before > 0)
        let url = "http://127.0.0.1:\(port)/alerts/\(id)/report"
        let finished = Mutex(false)
        let flood = Task {
            defer { finished.withLock { $0 = true } }
            return try await runProcessOffPool(
                "/usr/bin/curl",
                ["-s", "-Z", "--parallel-max", "300", "-H", "Authorization: Bearer t0ken", "-w", "%{http_code}\n"]
                    + Array(repeating: ["-o", "/dev/null", url], count: 1000).flatMap { $0 })
        }
        var peak = before
        while !finished.withLock({ $0 }) {
            peak = max(peak, threads())
            try await Task.sleep(for: .milliseconds(5))
        }
        let (_, codes) = try await flood.value
        let answers = codes.split(separator: "\n")
        #expect(answers.count == 1000)
        #expect(answers.allSatisfy { $0 == "200" || $0 == "503" }, "\(Set(answers))")
        #expect(answers.contains("200"))
        #expect(peak - before < 50, "threads went from \(before) to \(peak)")
    }
}

/// What each kind of connection and header proves (pure: the routes ask this for every request).
@Suite struct RequestAuthenticationTests {
    @Test func eachWayInAuthenticatesOrNot() {
        let decide = RequestAuthentication.decide
        #expect(decide(.tls, "CN=falco", nil, nil) == .authenticated(via: "mtls CN=falco"))
        #expect(decide(.tls, nil, nil, nil) == .refused("no client certificate"))
        #expect(decide(.tls, nil, "Bearer s3cret", "s3cret") == .authenticated(via: "bearer token"))
        #expect(decide(.tls, nil, nil, "s3cret") == .refused("missing bearer token"))
        #expect(decide(.tls, "CN=falco", "Bearer nope", "s3cret") == .refused("wrong bearer token"))
        #expect(
            decide(.unix(uid: 0, gid: 0, pid: 7), nil, nil, "s3cret") == .authenticated(via: "unix peer uid 0 pid 7"))
        #expect(decide(.plain, nil, nil, nil) == .unauthenticated)
        #expect(decide(.plain, nil, nil, "s3cret") == .refused("missing bearer token"))
        #expect(decide(.plain, nil, "Bearer x", nil) == .refused("wrong bearer token"), "a token where none is set")
        #expect(RequestAuthentication.unauthenticated.sender?.authenticated == false)
    }
}
