// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenDaemon
import WardenHTTP
import WardenSensors
import WardenYara

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the agent: watch tmpfs mounts, take Falco alerts, respond per policy.",
        discussion: """
            Watches every tmpfs mount (and --watch paths), follows mounts that appear or go away, \
            and records executables in <state-dir>/shmwarden.sqlite with evidence copies in \
            <state-dir>/evidence. Falco alerts posted to --listen are correlated with those files \
            and answered per the --policy; the policy's guard section runs the exec guard. Every \
            flag can also be set in /etc/shmwarden/shmwarden.yaml (see `shmwarden config check`); \
            flags win. SIGHUP reloads the policy; SIGTERM or SIGINT stop it cleanly after \
            flushing the store.
            """)

    @OptionGroup var state: StateOptions
    @OptionGroup var watch: WatchOptions

    @Option(help: "Where Falco posts alerts (http_output.url: http://HOST:PORT/falco; default 127.0.0.1:2804).")
    var listen: String?

    @Flag(help: "Do not listen for Falco alerts over HTTP.")
    var noListen = false

    @Option(help: "Also take alerts on this unix socket (created mode 0600).")
    var unixSocket: String?

    @Option(help: "A file holding a bearer token (Falcosidekick's customheaders); a wrong one gets 401.")
    var tokenFile: String?

    @Option(help: "The intake's TLS directory, as `certs init` writes it (default /etc/shmwarden/tls).")
    var tlsDirectory: String?

    @Flag(
        help:
            "Plain HTTP without authentication on the TCP intake: alerts are stored, never acted on beyond record and advise-noexec."
    )
    var insecure = false

    @Option(help: "Largest alert body accepted (bytes; K, M suffixes; default 1M); larger gets 413.")
    var bodyLimit: String?

    @Option(
        help: """
            Response policy: a YAML file or a directory of them (default: /etc/shmwarden/policies when \
            it exists, else no responses). SIGHUP reloads it; an invalid reload keeps the last good policy.
            """)
    var policy: String?

    @Flag(
        help:
            "Do not watch every exec for memfd, deleted and interpreted payloads (exec-monitor: false); the tmpfs watches stay."
    )
    var noExecMonitor = false

    @Option(
        name: .customLong("yara-rules"),
        help:
            "Scan every capture with these YARA rules: a file or a directory of *.yar (repeatable; wins over yara.rules)."
    )
    var yaraRules: [String] = []

    @Option(help: .hidden) var commitLog: String?

    func validate() throws {
        if let listen, listen != "off", !HostPortText.isValid(listen) {
            throw ValidationError("--listen must be HOST:PORT (e.g. 127.0.0.1:2804), got '\(listen)'")
        }
        if let bodyLimit, !Self.isValidBodyLimit(bodyLimit) {
            throw ValidationError("--body-limit: '\(bodyLimit)' is not a size between 1 byte and 2G")
        }
        if let tokenFile, (try? Self.readToken(tokenFile)) == nil {
            throw ValidationError("--token-file: cannot read a non-empty token from '\(tokenFile)'")
        }
    }

    static func isValidBodyLimit(_ text: String) -> Bool {
        guard let limit = ByteSizeText.parse(text) else { return false }
        return limit > 0 && limit <= Int64(Int32.max)
    }

    func run() async throws {
        let file = try state.configFile()
        var configuration = try watch.configuration(state: state.state, file: file, commitLog: commitLog)
        do {
            (configuration.policy, configuration.policyPath) = try AgentConfiguration.loadPolicy(policy ?? file.policy)
        } catch {
            throw UsageError(message: "invalid policy, not started:\n\(error.description)")
        }
        configuration.retention = file.retention
        configuration.outputs = file.outputs
        configuration.outbox = file.outbox
        configuration.yara = file.yara
        if !yaraRules.isEmpty { configuration.yara.rules = yaraRules.map(AgentConfiguration.absolute) }
        do {
            configuration.yaraRules = try AgentConfiguration.loadYaraRules(configuration.yara)
        } catch {
            throw UsageError(message: "YARA rules do not compile, not started:\n\(error.description)")
        }
        if let storage = file.storage { configuration.storage = storage }
        if let share = file.inotifyWatchShare { configuration.inotifyWatchShare = share }
        if noExecMonitor || file.execMonitor.enabled == false {
            configuration.execMonitor = nil
        } else if let interpreters = file.execMonitor.interpreters {
            configuration.execMonitor?.interpreters = interpreters
        }
        let listenAddress = noListen ? "off" : (listen ?? file.listen ?? "127.0.0.1:2804")
        if listenAddress != "off", let (host, port) = HostPortText.parse(listenAddress) {
            let tokenPath = tokenFile ?? file.tokenFile
            let limit = bodyLimit ?? file.bodyLimit ?? "1M"
            guard Self.isValidBodyLimit(limit) else {
                throw UsageError(message: "body-limit '\(limit)' is out of range")
            }
            let token: String?
            do {
                token = try tokenPath.map(Self.readToken)
            } catch {
                throw UsageError(message: "token-file: cannot read a non-empty token from '\(tokenPath ?? "")'")
            }
            let insecure = self.insecure || file.intake.insecure == true
            let directory = tlsDirectory ?? IntakeCertificates.defaultDirectory
            let defaults = IntakeCertificates.ServerFiles(directory: directory)
            let tls =
                insecure
                ? nil
                : IntakeTLS(
                    certificate: file.intake.certificate ?? defaults.certificate, key: file.intake.key ?? defaults.key,
                    clientCA: file.intake.clientCA ?? defaults.clientCA,
                    clientCertificates: file.intake.clientCertificates == "optional" ? .optional : .required)
            if let tls, !FileManager.default.fileExists(atPath: tls.certificate) {
                throw UsageError(
                    message:
                        "the intake's TLS certificate \(tls.certificate) does not exist: run `shmwarden certs init` "
                        + "(it prints the falco.yaml http_output block), or set intake.insecure: true for plain HTTP")
            }
            configuration.http = IntakeServerConfiguration(
                host: host, port: port, unixSocketPath: unixSocket ?? file.unixSocket,
                unixSocketPeers: UnixPeerPolicy(uids: Set(file.intake.peerUIDs), gids: Set(file.intake.peerGIDs)),
                bearerToken: token, tls: tls, insecure: insecure, bodyLimit: Int(ByteSizeText.parse(limit) ?? 1 << 20))
            if let problem = configuration.http?.problem { throw UsageError(message: problem) }
        }
        let logger = state.makeLogger()
        try await Agent.run(configuration: configuration, logger: logger)
    }

    static func readToken(_ path: String) throws -> String {
        let token = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw ValidationError("empty token file") }
        return token
    }
}
