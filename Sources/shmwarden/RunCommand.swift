// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenDaemon
import WardenCore
import WardenHTTP

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the agent: watch tmpfs mounts and record every executable dropped there.",
        discussion: """
            Watches every tmpfs mount (and --watch paths), follows mounts that appear or go away, \
            and records executables in <state-dir>/shmwarden.sqlite with evidence copies in \
            <state-dir>/evidence. Falco alerts posted to --listen are correlated with those files             and answered per the --policy. SIGTERM or SIGINT stop it cleanly after flushing the store.
            """)

    @OptionGroup var state: StateOptions
    @OptionGroup var watch: WatchOptions

    @Option(help: "Where Falco posts alerts (http_output.url: http://HOST:PORT/falco).")
    var listen: String = "127.0.0.1:2804"

    @Flag(help: "Do not listen for Falco alerts over HTTP.")
    var noListen = false

    @Option(help: "Also take alerts on this unix socket (created mode 0600).")
    var unixSocket: String?

    @Option(help: "A file holding a bearer token; when set, every request must carry it.")
    var tokenFile: String?

    @Option(help: "Largest alert body accepted (bytes; K, M suffixes); larger gets 413.")
    var bodyLimit: String = "1M"

    @Option(
        help: """
            Response policy: a YAML file or a directory of them (default: /etc/shmwarden/policies when             it exists, else no responses). SIGHUP reloads it; an invalid reload keeps the last good policy.
            """)
    var policy: String?

    @Option(help: .hidden) var commitLog: String?

    func validate() throws {
        guard HostPort.parse(listen) != nil else {
            throw ValidationError("--listen must be HOST:PORT (e.g. 127.0.0.1:2804), got '\(listen)'")
        }
        guard let limit = ByteSize.parse(bodyLimit), limit > 0, limit <= Int64(Int32.max) else {
            throw ValidationError("--body-limit: '\(bodyLimit)' is not a size between 1 byte and 2G")
        }
        if let tokenFile, (try? readToken(tokenFile)) == nil {
            throw ValidationError("--token-file: cannot read a non-empty token from '\(tokenFile)'")
        }
    }

    func run() async throws {
        let logger = state.makeLogger()
        var configuration = watch.configuration(state: state.state, commitLog: commitLog)
        do {
            (configuration.policy, configuration.policyPath) = try AgentConfiguration.loadPolicy(policy)
        } catch {
            throw UsageError(message: "invalid policy, not started:\n\(error.description)")
        }
        if !noListen, let (host, port) = HostPort.parse(listen) {
            configuration.http = IntakeServerConfiguration(
                host: host, port: port, unixSocketPath: unixSocket, bearerToken: try tokenFile.map(readToken),
                bodyLimit: Int(ByteSize.parse(bodyLimit) ?? 1 << 20))
        }
        try await Agent.run(configuration: configuration, logger: logger)
    }

    private func readToken(_ path: String) throws -> String {
        let token = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw ValidationError("empty token file") }
        return token
    }
}

/// `HOST:PORT`, with `[v6]:PORT` for IPv6 literals.
enum HostPort {
    static func parse(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        return (host, port)
    }
}
