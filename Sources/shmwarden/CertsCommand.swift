// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenHTTP

struct CertsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs", abstract: "Make the intake's certificates (mutual TLS with Falco).",
        subcommands: [Init.self])

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init",
            abstract: "Create the intake's private CA (if none), its server certificate and client certificates.",
            discussion: """
                Writes DIR/ca.crt and ca.key (kept when they exist), DIR/server.crt and server.key, \
                and DIR/clients/<name>.crt and .key for each --client (falco and falcosidekick by \
                default); keys are 0600. Run it again to rotate the server and client certificates \
                under the same CA, then `systemctl reload shmwarden` (SIGHUP): the agent serves new \
                connections with the new certificate and loses no alert. Prints the falco.yaml \
                http_output block and Falcosidekick's webhook settings.
                """)

        @Option(help: "Where the files go.")
        var directory: String = IntakeCertificates.defaultDirectory

        @Option(
            name: .customLong("host"),
            help:
                "A name or IP address the server certificate is valid for (repeatable; default localhost, 127.0.0.1, ::1)."
        )
        var hosts: [String] = []

        @Option(
            name: .customLong("client"),
            help: "A client certificate to issue (repeatable; default falco, falcosidekick).")
        var clients: [String] = []

        @Option(help: "The intake's address, for the printed Falco settings.")
        var listen: String = "127.0.0.1:2804"

        func validate() throws {
            for client in clients where client.isEmpty || client.contains("/") || client.hasPrefix(".") {
                throw ValidationError("--client '\(client)' must be a plain name (it names files)")
            }
            guard HostPortText.isValid(listen) else { throw ValidationError("--listen must be HOST:PORT") }
        }

        func run() throws {
            let issued: IntakeCertificates.Issued
            do {
                issued = try IntakeCertificates.issue(
                    directory: directory, hosts: hosts.isEmpty ? ["localhost", "127.0.0.1", "::1"] : hosts,
                    clients: clients.isEmpty ? IntakeCertificates.defaultClients : clients)
            } catch {
                throw UsageError(message: "cannot write the certificates in \(directory): \(error)")
            }
            print(issued.createdAuthority ? "created the CA \(directory)/ca.crt" : "kept the CA \(directory)/ca.crt")
            print("server: \(issued.server.certificate), \(issued.server.key)")
            for client in issued.clients { print("client \(client.name): \(client.certificate), \(client.key)") }
            let (host, port) = HostPortText.parse(listen) ?? ("127.0.0.1", 2804)
            let urlHost = host.contains(":") ? "[\(host)]" : host
            if let falco = issued.clients.first(where: { $0.name == "falco" }) ?? issued.clients.first {
                print("\n# falco.yaml (Falco reads these files as root; keep the key 0600):")
                print(
                    IntakeCertificates.falcoConfiguration(
                        url: "https://\(urlHost):\(port)/falco", caCertificate: "\(directory)/ca.crt",
                        certificate: falco.certificate, key: falco.key))
            }
            if let sidekick = issued.clients.first(where: { $0.name == "falcosidekick" }) {
                print("\n# Falcosidekick (config.yaml), webhook output with mutual TLS:")
                print(
                    """
                    mutualtlsclient:
                      certfile: "\(sidekick.certificate)"
                      keyfile: "\(sidekick.key)"
                      cacertfile: "\(directory)/ca.crt"
                    webhook:
                      address: "https://\(urlHost):\(port)/falco"
                      mutualtls: true
                      checkcert: true
                    """)
            }
        }
    }
}
