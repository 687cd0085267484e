// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Crypto
import Foundation
import SwiftASN1
import X509

/// The intake's private certificate authority and the certificates it issues: the server's, and
/// one client certificate each for Falco and Falcosidekick (mutual TLS).
///
/// Layout under the directory (0755, root): `ca.crt`, `ca.key`, `server.crt`, `server.key`,
/// `clients/<name>.crt` and `clients/<name>.key`. Keys are 0600; certificates 0644. An existing
/// CA is kept, so issuing again (rotation) needs no change on the clients' side but their new
/// files; `shmwarden run` reloads its own on SIGHUP.
public enum IntakeCertificates {
    /// The files `run` reads: the server's certificate and key and the CA that signs clients.
    public struct ServerFiles: Hashable, Sendable {
        public var certificate: String
        public var key: String
        public var clientCA: String

        public init(certificate: String, key: String, clientCA: String) {
            self.certificate = certificate
            self.key = key
            self.clientCA = clientCA
        }

        public init(directory: String) {
            self.init(
                certificate: directory + "/server.crt", key: directory + "/server.key", clientCA: directory + "/ca.crt")
        }
    }

    /// What `issue` wrote.
    public struct Issued: Sendable {
        public var directory: String
        public var createdAuthority: Bool
        public var server: ServerFiles
        /// Client name → (certificate, key).
        public var clients: [(name: String, certificate: String, key: String)]
    }

    public static let defaultDirectory = "/etc/shmwarden/tls"
    public static let defaultClients = ["falco", "falcosidekick"]

    /// Creates the CA when `directory` has none, then issues the server certificate (valid for
    /// `hosts`: names and IP addresses) and a client certificate for each of `clients`.
    ///
    /// - Parameter validDays: how long the server and client certificates are valid.
    public static func issue(
        directory: String, hosts: [String] = ["localhost", "127.0.0.1", "::1"], clients: [String] = defaultClients,
        validDays: Int = 825, now: Date = Date()
    ) throws -> Issued {
        let manager = FileManager.default
        try manager.createDirectory(atPath: directory + "/clients", withIntermediateDirectories: true)
        chmod(directory, 0o755)
        chmod(directory + "/clients", 0o755)
        let caCertificatePath = directory + "/ca.crt"
        let caKeyPath = directory + "/ca.key"
        let authority: (Certificate, P256.Signing.PrivateKey)
        var created = false
        if manager.fileExists(atPath: caCertificatePath), manager.fileExists(atPath: caKeyPath) {
            let certificate = try Certificate(pemEncoded: String(contentsOfFile: caCertificatePath, encoding: .utf8))
            let key = try P256.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: caKeyPath, encoding: .utf8))
            authority = (certificate, key)
        } else {
            let key = P256.Signing.PrivateKey()
            let name = try DistinguishedName {
                OrganizationName("shmwarden")
                CommonName("shmwarden intake CA \(hostName())")
            }
            let certificate = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
                notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(10 * 365 * 86_400),
                issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                    Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                    SubjectKeyIdentifier(hash: .init(key.publicKey))
                }, issuerPrivateKey: .init(key))
            try write(key.pemRepresentation, to: caKeyPath, mode: 0o600)
            try write(try certificate.serializeAsPEM().pemString, to: caCertificatePath, mode: 0o644)
            authority = (certificate, key)
            created = true
        }
        func leaf(_ commonName: String, usage: ExtendedKeyUsage.Usage, names: [GeneralName]) throws
            -> (Certificate, P256.Signing.PrivateKey)
        {
            let key = P256.Signing.PrivateKey()
            let certificate = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
                notValidBefore: now.addingTimeInterval(-300),
                notValidAfter: now.addingTimeInterval(Double(validDays) * 86_400),
                issuer: authority.0.subject,
                subject: try DistinguishedName {
                    OrganizationName("shmwarden")
                    CommonName(commonName)
                }, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true))
                    try ExtendedKeyUsage([usage])
                    AuthorityKeyIdentifier(
                        keyIdentifier: try authority.0.extensions.subjectKeyIdentifier?.keyIdentifier)
                    if !names.isEmpty { SubjectAlternativeNames(names) }
                }, issuerPrivateKey: .init(authority.1))
            return (certificate, key)
        }
        let server = ServerFiles(directory: directory)
        let (serverCertificate, serverKey) = try leaf(
            "shmwarden intake", usage: .serverAuth, names: hosts.map(generalName))
        try write(serverKey.pemRepresentation, to: server.key, mode: 0o600)
        try write(try serverCertificate.serializeAsPEM().pemString, to: server.certificate, mode: 0o644)
        var issuedClients: [(String, String, String)] = []
        for client in clients {
            let (certificate, key) = try leaf(client, usage: .clientAuth, names: [])
            let certificatePath = directory + "/clients/\(client).crt"
            let keyPath = directory + "/clients/\(client).key"
            try write(key.pemRepresentation, to: keyPath, mode: 0o600)
            try write(try certificate.serializeAsPEM().pemString, to: certificatePath, mode: 0o644)
            issuedClients.append((client, certificatePath, keyPath))
        }
        return Issued(directory: directory, createdAuthority: created, server: server, clients: issuedClients)
    }

    /// An IP address literal as an IP SAN, anything else as a DNS name.
    static func generalName(_ host: String) -> GeneralName {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            return .ipAddress(ASN1OctetString(contentBytes: withUnsafeBytes(of: &v4) { ArraySlice($0) }))
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return .ipAddress(ASN1OctetString(contentBytes: withUnsafeBytes(of: &v6) { ArraySlice($0) }))
        }
        return .dnsName(host)
    }

    /// Writes `text` to a temporary file with `mode`, then renames it over `path`: a reader
    /// (the agent reloading) sees the old file or the new one, and a key is never readable by
    /// others, not even for a moment.
    static func write(_ text: String, to path: String, mode: mode_t) throws {
        let temporary = path + ".tmp-\(getpid())"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: temporary]) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        fchmod(fd, mode)
        fsync(fd)
        close(fd)
        guard written == bytes.count, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count - 1)
        return String(cString: buffer)
    }

    /// The `http_output` block of `falco.yaml` for this agent, with the client files of `client`.
    public static func falcoConfiguration(url: String, caCertificate: String, certificate: String, key: String)
        -> String
    {
        """
        http_output:
          enabled: true
          url: "\(url)"
          mtls: true
          client_cert: "\(certificate)"
          client_key: "\(key)"
          ca_cert: "\(caCertificate)"
        """
    }
}
