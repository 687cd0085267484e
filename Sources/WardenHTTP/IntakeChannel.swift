// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import HummingbirdCore
import Logging
import NIOCore
import NIOSSL
import Synchronization

/// The intake's TLS settings: its certificate and key, and the CA whose client certificates it
/// accepts (mutual TLS, what Falco's `http_output` does with `mtls: true`).
public struct IntakeTLS: Hashable, Sendable {
    public enum ClientCertificates: String, Hashable, Sendable {
        /// The handshake fails without a client certificate of the CA.
        case required
        /// A client without one must send the bearer token (Falcosidekick's `customheaders`).
        case optional
    }

    public var certificate: String
    public var key: String
    public var clientCA: String
    public var clientCertificates: ClientCertificates

    public init(certificate: String, key: String, clientCA: String, clientCertificates: ClientCertificates = .required)
    {
        self.certificate = certificate
        self.key = key
        self.clientCA = clientCA
        self.clientCertificates = clientCertificates
    }
}

/// The server's TLS context, rebuilt from its files on `reload()`: new connections get the new
/// certificates, connections already open keep theirs, and no alert is refused meanwhile.
public final class IntakeTLSContext: Sendable {
    public let settings: IntakeTLS
    private let context: Mutex<NIOSSLContext>

    public init(_ settings: IntakeTLS) throws {
        self.settings = settings
        self.context = Mutex(try Self.make(settings))
    }

    /// Reads the files again; on an error the context in use stays.
    public func reload() throws {
        let fresh = try Self.make(settings)
        context.withLock { $0 = fresh }
    }

    var current: NIOSSLContext { context.withLock { $0 } }

    static func make(_ settings: IntakeTLS) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMFile(settings.certificate).map {
            NIOSSLCertificateSource.certificate($0)
        }
        let key = try NIOSSLPrivateKey(file: settings.key, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(settings.clientCA))
        configuration.certificateVerification =
            settings.clientCertificates == .required ? .noHostnameVerification : .optionalVerification
        return try NIOSSLContext(configuration: configuration)
    }
}

/// What one connection proved about its peer, for every request on it.
public final class ConnectionPeer: Sendable {
    public enum Kind: Sendable, Equatable {
        /// A TLS connection; `certificate` once its client certificate was verified.
        case tls
        /// A unix-socket peer whose uid or gid is allowed.
        case unix(uid: UInt32, gid: UInt32, pid: Int32)
        /// Plain TCP (`intake.insecure`).
        case plain
    }

    public let kind: Kind
    private let verifiedCertificate = Mutex<String?>(nil)

    init(_ kind: Kind) { self.kind = kind }

    /// The verified client certificate's description (serial number, common name), if any.
    public var certificate: String? { verifiedCertificate.withLock { $0 } }

    func setCertificate(_ text: String) { verifiedCertificate.withLock { $0 = text } }

    /// The peer of the connection the current request arrived on.
    @TaskLocal public static var current: ConnectionPeer?
}

/// Who may post on the unix socket, by `SO_PEERCRED`: root always, and these.
public struct UnixPeerPolicy: Hashable, Sendable {
    public var uids: Set<UInt32>
    public var gids: Set<UInt32>

    public init(uids: Set<UInt32> = [], gids: Set<UInt32> = []) {
        self.uids = uids
        self.gids = gids
    }

    public func allows(uid: UInt32, gid: UInt32) -> Bool { uid == 0 || uids.contains(uid) || gids.contains(gid) }
}

/// Wraps Hummingbird's HTTP/1 child channel with what the intake requires of a connection
/// before any byte of a request is read: a TLS handshake with the agent's context, or a unix
/// peer whose credentials the kernel reports (`SO_PEERCRED`) as allowed. Each connection's
/// proof is handed to its requests as `ConnectionPeer.current`.
struct IntakeChannel<Base: ServerChildChannel>: ServerChildChannel {
    enum Guard: Sendable {
        case tls(IntakeTLSContext)
        case unix(UnixPeerPolicy, logger: Logger)
        case plain
    }

    struct Value: ServerChildChannelValue {
        let base: Base.Value
        let peer: ConnectionPeer
        var channel: any Channel { base.channel }
    }

    let base: Base
    let guarding: Guard

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        switch guarding {
        case .plain:
            return base.setup(channel: channel, logger: logger).map { Value(base: $0, peer: ConnectionPeer(.plain)) }
        case .tls(let context):
            let peer = ConnectionPeer(.tls)
            return channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context.current))
                try channel.pipeline.syncOperations.addHandler(PeerCertificateRecorder(peer: peer))
            }.flatMap {
                base.setup(channel: channel, logger: logger)
            }.map { Value(base: $0, peer: peer) }
        case .unix(let policy, let auditLogger):
            guard let provider = channel as? any SocketOptionProvider else {
                channel.close(promise: nil)
                return channel.eventLoop.makeFailedFuture(PeerRefused(reason: "no peer credentials on this channel"))
            }
            let credentials: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
                level: .init(rawValue: SOL_SOCKET), name: .init(rawValue: SO_PEERCRED))
            return credentials.flatMap { credentials -> EventLoopFuture<Value> in
                guard policy.allows(uid: credentials.uid, gid: credentials.gid) else {
                    auditLogger.warning(
                        "refused a unix-socket peer",
                        metadata: [
                            "peer.uid": "\(credentials.uid)", "peer.gid": "\(credentials.gid)",
                            "peer.pid": "\(credentials.pid)",
                        ])
                    channel.close(promise: nil)
                    return channel.eventLoop.makeFailedFuture(
                        PeerRefused(reason: "uid \(credentials.uid) gid \(credentials.gid) may not post"))
                }
                let peer = ConnectionPeer(.unix(uid: credentials.uid, gid: credentials.gid, pid: credentials.pid))
                return base.setup(channel: channel, logger: logger).map { Value(base: $0, peer: peer) }
            }
        }
    }

    func handle(value: Value, logger: Logger) async {
        await ConnectionPeer.$current.withValue(value.peer) {
            await base.handle(value: value.base, logger: logger)
        }
    }
}

extension IntakeChannel: HTTPChannelHandler where Base: HTTPChannelHandler {
    var responder: HTTPChannelHandler.Responder { base.responder }
}

/// `struct ucred` (pid, uid, gid), as `SO_PEERCRED` fills it.
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

struct PeerRefused: Error, CustomStringConvertible {
    var reason: String
    var description: String { "unix-socket peer refused: \(reason)" }
}

/// Sits after the TLS handler: application data only flows once the handshake is done, so at the
/// first read the peer's certificate (verified against the CA, or absent) is final.
final class PeerCertificateRecorder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let peer: ConnectionPeer
    private var recorded = false

    init(peer: ConnectionPeer) { self.peer = peer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !recorded {
            recorded = true
            if let certificate = try? context.pipeline.syncOperations.nioSSL_peerCertificate() {
                peer.setCertificate(certificate.description)
            }
        }
        context.fireChannelRead(data)
    }
}
