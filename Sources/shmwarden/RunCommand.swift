// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenDaemon
import WardenHTTP

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

    @Option(help: "A file holding a bearer token; when set, every request must carry it.")
    var tokenFile: String?

    @Option(help: "Largest alert body accepted (bytes; K, M suffixes; default 1M); larger gets 413.")
    var bodyLimit: String?

    @Option(
        help: """
            Response policy: a YAML file or a directory of them (default: /etc/shmwarden/policies when \
            it exists, else no responses). SIGHUP reloads it; an invalid reload keeps the last good policy.
            """)
    var policy: String?

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
            configuration.http = IntakeServerConfiguration(
                host: host, port: port, unixSocketPath: unixSocket ?? file.unixSocket, bearerToken: token,
                bodyLimit: Int(ByteSizeText.parse(limit) ?? 1 << 20))
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
