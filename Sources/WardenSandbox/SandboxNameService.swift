// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import Synchronization
import SystemPackage
import WardenLinux

/// The jail's name service: a socket where glibc looks for nscd (`/var/run/nscd/socket`), so that
/// the host names a sample looks up (getaddrinfo, gethostbyname, gethostbyaddr) are on record,
/// although it never reaches a name server.
///
/// glibc asks nscd before any NSS module (whatever nsswitch.conf says), static binaries too. Each
/// host lookup is recorded. A host name is answered with an address of its own
/// (`SandboxNameBook`: 198.18.0.1 on, routed nowhere), so the sample goes on to connect there,
/// to the sink; an IPv6-only request and an address's name are answered "not found", as nscd
/// itself answers a negative entry, so glibc asks again for the next one (a closed connection
/// instead would make it skip nscd for its next 100 lookups). Other requests (users, groups,
/// nscd's shared-memory maps) are closed unanswered, and glibc reads the jail's own files as it
/// did without the socket. Programs with their own resolver (Go's, musl's) never ask it: the
/// name server below hears theirs.
///
/// One connection at a time on one thread, each bounded in time and size: a sample that connects
/// and sends nothing, or trickles bytes, delays its own lookups by half a second at most and
/// never holds the supervisor.
///
/// It is also the jail's name server for resolvers of their own that send on a connected
/// datagram socket (Go's): the observer hands it the other end of each datagram socket standing
/// in for an IPv4 or IPv6 one (`adopt`), and answers that socket's connect to the loopback (where
/// the jail's resolv.conf points) or to any port 53 (a name server built in, as Mirai's 8.8.8.8)
/// as made. Each query that arrives is recorded and answered at once: an A question with the
/// name's address from the same book, any other with no record (and a name that is none with
/// NXDOMAIN). musl's resolver sends on an unconnected socket: the observer delivers its queries
/// here (`SandboxObserver.deliver`) and gives their answers the source it checks. DNS over TCP
/// is answered from the same book by the sink (`answer(_:)`).
final class SandboxNameService: @unchecked Sendable {
    /// glibc's nscd request types that name a host (nscd-client.h).
    enum RequestType: Int32 {
        case getHostByName = 4
        case getHostByNameIPv6 = 5
        case getHostByAddress = 6
        case getHostByAddressIPv6 = 7
        case getAddressInfo = 14

        var name: String {
            switch self {
            case .getHostByName: "gethostbyname"
            case .getHostByNameIPv6: "gethostbyname (IPv6)"
            case .getHostByAddress: "gethostbyaddr"
            case .getHostByAddressIPv6: "gethostbyaddr (IPv6)"
            case .getAddressInfo: "getaddrinfo"
            }
        }
    }

    /// Where glibc looks for nscd (`_PATH_NSCDSOCKET`), in the jail.
    static let socketPath = "/var/run/nscd/socket"
    static let protocolVersion: Int32 = 2
    static let keyLimit = 1024
    static let lookupLimit = 200
    /// How long one connection may take to send its request.
    static let connectionMilliseconds = 500

    private let listener: FileDescriptor
    private let wake: FileDescriptor
    /// Datagram stand-ins' other ends, handed over by the observer's thread, and the eventfd
    /// that says one came.
    private let adopted = Mutex<[FileDescriptor]>([])
    private let adoptedWake: FileDescriptor
    /// The most datagram ends a run's name server takes: past it, stand-ins are made without one.
    static let peerLimit = 64
    // Owned by the service thread.
    private var peers: [FileDescriptor] = []
    private var thread: ThreadJoin?
    // Written by the service thread only; read after `stop` has joined it.
    private var lookups: [SandboxReport.NameLookup] = []
    /// The addresses given, shared with the sink's thread (DNS over TCP, `answer(_:)`).
    private let book = Mutex(SandboxNameBook())

    /// Whether host names get addresses of their own (`SandboxRunner.Options.answerNames`).
    private let answerNames: Bool

    /// Makes `<root>` + `socketPath`, connectable by the sandbox's uid.
    init(root: String, answerNames: Bool = true) throws(SystemCallError) {
        self.answerNames = answerNames
        var components = Self.socketPath.split(separator: "/").map(String.init)
        let name = components.removeLast()
        var directory = root
        for component in components {
            directory += "/" + component
            try sys_mkdir(Array(directory.utf8), permissions: 0o755)
            try sys_chmod(Array(directory.utf8), 0o755)
        }
        let parent = try sys_open(Array(directory.utf8), flags: O_RDONLY | O_DIRECTORY)
        defer { sys_close(parent) }
        listener = try sys_listenUnixStream(in: parent, name: Array(name.utf8))
        do {
            // connect(2) needs write permission on the socket file.
            try sys_chmod(Array((directory + "/" + name).utf8), 0o666)
            wake = try sys_eventfd()
        } catch {
            sys_close(listener)
            throw error
        }
        do {
            adoptedWake = try sys_eventfd()
        } catch {
            sys_close(listener)
            sys_close(wake)
            throw error
        }
    }

    /// Takes `peer`, the supervisor's end of a datagram stand-in, to answer the queries sent on
    /// it; it is closed at `stop`. Called from the observer's thread, at most `peerLimit` times.
    func adopt(_ peer: FileDescriptor) {
        adopted.withLock { $0.append(peer) }
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { try? sys_writeAll(adoptedWake, $0) }
    }

    /// Serves on a thread of its own until `stop`.
    func start() {
        thread = ThreadJoin.start(name: "warden-names") { [self] in serve() }
    }

    /// Stops serving (the sample is gone: nothing more can connect) and returns what was looked
    /// up, and the addresses given to names.
    func stop() -> (lookups: [SandboxReport.NameLookup], book: SandboxNameBook) {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { try? sys_writeAll(wake, $0) }
        thread?.join()
        thread = nil
        sys_close(listener)
        sys_close(wake)
        sys_close(adoptedWake)
        (peers + adopted.withLock { $0 }).forEach(sys_close)
        peers = []
        return (lookups, book.withLock { $0 })
    }

    /// The address for host name `name`, as this service gives it (`SandboxNameBook`); nil
    /// for a name that is none. Any thread.
    func address(for name: String) -> [UInt8]? {
        // A name with bytes no host name has (`\DDD` escapes) does not exist.
        guard !name.contains("\\") else { return nil }
        guard answerNames else { return SandboxNameBook.isLocalhost(name) ? SandboxNameBook.loopback : nil }
        return book.withLock { $0.address(for: name) }
    }

    /// The answer to DNS query `question`, from the book: an A question with the name's
    /// address, any other with no record, a name that is none NXDOMAIN; and the address given,
    /// if one was. Any thread.
    func answer(_ question: DNSQuestion) -> (message: [UInt8], address: [UInt8]?) {
        let address = address(for: question.name)
        let answered = question.isAddressQuestion ? address : nil
        return (address == nil ? question.notFoundAnswer : question.answer(address: answered), answered)
    }

    private func serve() {
        while true {
            var fds = [
                pollfd(fd: listener.rawValue, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wake.rawValue, events: Int16(POLLIN), revents: 0),
                pollfd(fd: adoptedWake.rawValue, events: Int16(POLLIN), revents: 0),
            ]
            fds += peers.map { pollfd(fd: $0.rawValue, events: Int16(POLLIN), revents: 0) }
            guard (try? sys_poll(&fds, timeout: -1)) != nil, fds[1].revents == 0 else { return }
            if fds[2].revents != 0 {
                var count: UInt64 = 0
                _ = withUnsafeMutableBytes(of: &count) { try? sys_read(adoptedWake, into: $0) }
                peers += adopted.withLock { taken in
                    defer { taken = [] }
                    return taken
                }
            }
            for (index, peer) in zip(fds.indices.dropFirst(3), peers) where fds[index].revents != 0 {
                answerQueries(on: peer)
            }
            guard fds[0].revents != 0 else { continue }
            while true {
                let accepted: (connection: FileDescriptor, peerPID: Int32)?
                do {
                    accepted = try sys_accept(listener, receiveTimeoutMilliseconds: 100)
                } catch {
                    // Out of descriptors, say: wait a little rather than spin on a listener that
                    // stays readable.
                    usleep(10_000)
                    break
                }
                guard let (connection, pid) = accepted else { break }
                defer { sys_close(connection) }
                guard let request = Self.readRequest(connection) else { continue }
                guard let type = RequestType(rawValue: request.type) else { continue }  // closed unanswered
                let name = Self.describe(request.key, type)
                let address = type == .getAddressInfo || type == .getHostByName ? address(for: name) : nil
                if lookups.count < Self.lookupLimit {
                    lookups.append(
                        .init(request: type.name, name: name, pid: pid, answer: address.map(SandboxNameBook.text)))
                }
                _ = sys_sendAll(
                    connection,
                    address.map { Self.foundAnswer(type, name: name, address: $0) } ?? Self.notFoundAnswer(type))
            }
        }
    }

    /// Reads what waits on `peer` (a few datagrams at most, so that no socket holds the thread),
    /// recording each DNS question and answering it from the book; anything else is dropped.
    private func answerQueries(on peer: FileDescriptor) {
        var message = [UInt8](repeating: 0, count: DNSQuestion.readLimit)
        for _ in 0..<16 {
            guard
                let (count, pid) = message.withUnsafeMutableBytes({
                    (try? sys_receiveDatagram(peer, into: $0)) ?? nil
                })
            else { return }
            guard let question = DNSQuestion(message: Array(message[..<count])) else { continue }
            let (answer, answered) = answer(question)
            if lookups.count < Self.lookupLimit {
                lookups.append(
                    .init(
                        request: SandboxReport.NameLookup.dnsPrefix + question.type, name: question.name, pid: pid,
                        answer: answered.map(SandboxNameBook.text)))
            }
            _ = sys_sendAll(peer, answer)
        }
    }

    /// The request on `connection` (header, then key), or nil when it is malformed, too large or
    /// not all there in time.
    static func readRequest(_ connection: FileDescriptor) -> (type: Int32, key: [UInt8])? {
        let deadline = sys_monotonicNanoseconds() + Int64(connectionMilliseconds) * 1_000_000
        func read(_ count: Int) -> [UInt8]? {
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: count)
            while bytes.count < count && sys_monotonicNanoseconds() < deadline {
                let wanted = count - bytes.count
                let got: Int?
                do {
                    got = try chunk.withUnsafeMutableBytes {
                        try sys_read(connection, into: .init(rebasing: $0[..<wanted]))
                    }
                } catch {
                    return nil
                }
                // nil: the receive timeout; look at the deadline again. 0: closed.
                guard let got else { continue }
                if got <= 0 { return nil }
                bytes += chunk[..<got]
            }
            return bytes.count == count ? bytes : nil
        }
        guard let header = read(12), let (type, keyLength) = parseHeader(header), let key = read(keyLength) else {
            return nil
        }
        return (type, key)
    }

    /// glibc's `request_header` {version, type, key_len}, native-endian int32s; nil when the
    /// version is not nscd's or the key is empty or over `keyLimit`.
    static func parseHeader(_ bytes: [UInt8]) -> (type: Int32, keyLength: Int)? {
        guard bytes.count == 12 else { return nil }
        let fields = (0..<3).map { index in
            bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: index * 4, as: Int32.self) }
        }
        guard fields[0] == protocolVersion, fields[2] > 0, Int(fields[2]) <= keyLimit else { return nil }
        return (fields[1], Int(fields[2]))
    }

    /// The name looked up: the key up to its NUL, or an address key as text.
    static func describe(_ key: [UInt8], _ type: RequestType) -> String {
        switch type {
        case .getHostByAddress where key.count == 4: return key.map(String.init).joined(separator: ".")
        case .getHostByAddressIPv6 where key.count == 16:
            return stride(from: 0, to: 16, by: 2).map { String(Int(key[$0]) << 8 | Int(key[$0 + 1]), radix: 16) }
                .joined(separator: ":")
        default: return String(decoding: key.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// nscd's answer for host name `name`, found at IPv4 `address`, to a getaddrinfo or
    /// gethostbyname request (aicache.c's and hstcache.c's layouts: a header, then the data the
    /// client reads after it). getaddrinfo's: the addresses, their families, the canonical
    /// name; gethostbyname's: the name, then the addresses (no aliases).
    static func foundAnswer(_ type: RequestType, name: String, address: [UInt8]) -> [UInt8] {
        let canonical = Array(name.utf8) + [0]
        let inet = Int32(SandboxNetworkAnswer.inet)
        func header(_ fields: [Int32]) -> [UInt8] {
            fields.flatMap { value in withUnsafeBytes(of: value) { Array($0) } }
        }
        switch type {
        case .getAddressInfo:
            // ai_response_header: version, found, naddrs, addrslen, canonlen, error
            return header([protocolVersion, 1, 1, 4, Int32(canonical.count), 0]) + address + [UInt8(inet)] + canonical
        default:
            // hst_response_header: version, found, h_name_len, h_aliases_cnt, h_addrtype,
            // h_length, h_addr_list_cnt, error
            return header([protocolVersion, 1, Int32(canonical.count), 0, inet, 4, 1, 0]) + canonical + address
        }
    }

    /// nscd's answer for a name it knows to be absent (`notfound` in its hstcache.c and
    /// aicache.c): found 0, error HOST_NOT_FOUND.
    static func notFoundAnswer(_ type: RequestType) -> [UInt8] {
        let hostNotFound: Int32 = 1
        let fields: [Int32]
        switch type {
        case .getAddressInfo:
            // ai_response_header: version, found, naddrs, addrslen, canonlen, error
            fields = [protocolVersion, 0, 0, 0, 0, hostNotFound]
        default:
            // hst_response_header: version, found, h_name_len, h_aliases_cnt, h_addrtype,
            // h_length, h_addr_list_cnt, error
            fields = [protocolVersion, 0, 0, 0, -1, -1, 0, hostNotFound]
        }
        return fields.flatMap { value in withUnsafeBytes(of: value) { Array($0) } }
    }
}
