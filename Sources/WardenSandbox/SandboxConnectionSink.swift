// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import Synchronization
import SystemPackage
import WardenLinux

/// The other end of each TCP connection a sample makes to an outside address: the observer
/// answers the connect as made (`SandboxObserver`), with the sample's socket now one end of a
/// unix socket pair, and hands the other end here. What the sample sends first is its C2's
/// protocol: a miner's pool login (with its wallet), a bot's registration, a reverse shell's
/// prompt, a TLS ClientHello with the server's name. The sink keeps the first `keptBytes` of
/// each connection and counts the rest, up to `drainLimit` (an upload's size is on record, and
/// a POST whose body is past what is kept is still whole, and answered). A whole HTTP request or
/// TLS ClientHello it answers (`SandboxSinkAnswer`) and then closes; DNS over TCP (a connection
/// to port 53) it answers query by query from the jail's name service; anything else it answers
/// nothing. It closes a connection once `quietMilliseconds` pass without a byte (or at
/// `drainLimit`). Either way the sample sees its server answer or hang up, and goes on: to the
/// next stage of its chain, or to its next server, which is then on record too.
///
/// Its thread starts with the run's first connection: a run that connects nowhere pays nothing.
final class SandboxConnectionSink: @unchecked Sendable {
    /// What a connection carried: its first bytes, and how many it sent in all.
    struct Received: Equatable {
        var bytes: [UInt8] = []
        var total = 0
        /// What the sink answered before it closed (nil: nothing).
        var answer: SandboxSinkAnswer?
        /// The questions of DNS queries sent over it (a connection to port 53), each answered.
        var lookups: [SandboxReport.NameLookup] = []
    }

    static let keptBytes = 4096
    /// The most bytes read from one connection: past it, the sink hangs up (a flood over TCP
    /// does not keep its thread busy to the time limit).
    static let drainLimit = 64 << 20
    static let quietMilliseconds: Int64 = 500
    /// The most connections a run keeps open at once: past it, a connect fails as unreachable.
    static let openLimit = 32

    private struct Connection {
        var id: Int
        var fd: FileDescriptor
        var deadline: Int64
        /// The port the sample connected to, and its pid.
        var port: Int
        var pid: Int32
        /// How far its DNS messages have been answered (port 53), in its kept bytes.
        var answeredUpTo = 0
    }

    /// Answers DNS over TCP (a connection to port 53) from the jail's name service's book;
    /// nil: no name service, such connections are answered nothing.
    private let names: SandboxNameService?

    private let handedOver = Mutex<[Connection]>([])
    private let wake: FileDescriptor
    private var thread: ThreadJoin?
    private let stopping = Atomic<Bool>(false)
    // Owned by the sink's thread; read after `stop` has joined it.
    private var received: [Int: Received] = [:]
    /// Connections handed over and not yet closed, counted by the observer's thread.
    private let open = Atomic<Int>(0)

    init(names: SandboxNameService? = nil) throws(SystemCallError) {
        wake = try sys_eventfd()
        self.names = names
    }

    deinit { sys_close(wake) }

    /// Whether another connection may be taken (`openLimit`).
    var hasRoom: Bool { open.load(ordering: .relaxed) < Self.openLimit }

    /// Takes `peer`, the supervisor's end of connection `id`, made by process `pid` to `port`.
    /// Called from the observer's thread.
    func adopt(_ peer: FileDescriptor, id: Int, port: Int = 0, pid: Int32 = 0) {
        open.add(1, ordering: .relaxed)
        let deadline = sys_monotonicNanoseconds() + Self.quietMilliseconds * 1_000_000
        handedOver.withLock {
            $0.append(Connection(id: id, fd: peer, deadline: deadline, port: port, pid: pid))
        }
        if thread == nil {
            thread = ThreadJoin.start(name: "warden-sink") { [self] in serve() }
        }
        signal()
    }

    /// Reads what is left, closes every connection, and returns what each carried, by id.
    func stop() -> [Int: Received] {
        stopping.store(true, ordering: .relaxed)
        signal()
        thread?.join()
        thread = nil
        return received
    }

    private func signal() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { try? sys_writeAll(wake, $0) }
    }

    private func serve() {
        var connections: [Connection] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        func takeHandedOver() {
            let taken = handedOver.withLock { taken in
                defer { taken = [] }
                return taken
            }
            for connection in taken { received[connection.id] = Received() }
            connections += taken
        }
        defer {
            takeHandedOver()
            for connection in connections {
                _ = read(connection, into: &buffer)
                sys_close(connection.fd)
            }
        }
        while true {
            takeHandedOver()
            if stopping.load(ordering: .relaxed) { return }
            let now = sys_monotonicNanoseconds()
            let nearest = connections.map(\.deadline).min()
            let timeout = nearest.map { Int32(clamping: max(0, ($0 - now + 999_999) / 1_000_000)) } ?? -1
            var fds = [pollfd(fd: wake.rawValue, events: Int16(POLLIN), revents: 0)]
            fds += connections.map { pollfd(fd: $0.fd.rawValue, events: Int16(POLLIN), revents: 0) }
            guard (try? sys_poll(&fds, timeout: timeout)) != nil else { return }
            if fds[0].revents != 0 {
                var count: UInt64 = 0
                _ = withUnsafeMutableBytes(of: &count) { try? sys_read(wake, into: $0) }
            }
            let after = sys_monotonicNanoseconds()
            var kept: [Connection] = []
            for (index, var connection) in connections.enumerated() {
                var finished = false
                if fds[index + 1].revents != 0 {
                    let (got, ended) = read(connection, into: &buffer)
                    if got > 0 { connection.deadline = after + Self.quietMilliseconds * 1_000_000 }
                    var record = received[connection.id, default: Received()]
                    finished = ended || record.total >= Self.drainLimit
                    if got > 0, connection.port == DNSQuestion.port, let names {
                        answerQueries(on: &connection, in: &record, from: names)
                        received[connection.id] = record
                    } else if got > 0, record.answer == nil,
                        let answer = SandboxSinkAnswer.answer(toFirst: record.bytes, total: record.total)
                    {
                        // A few hundred bytes into an empty socket buffer: sent whole, or not
                        // at all when the sample has closed its end (no SIGPIPE).
                        _ = sys_sendAll(connection.fd, answer.bytes)
                        record.answer = answer
                        received[connection.id] = record
                        finished = true
                    }
                }
                if finished || after >= connection.deadline {
                    sys_close(connection.fd)
                    open.subtract(1, ordering: .relaxed)
                } else {
                    kept.append(connection)
                }
            }
            connections = kept
        }
    }

    /// Answers each DNS message over TCP (a 2-byte length, then the message) that is whole in
    /// `record`'s kept bytes past `connection.answeredUpTo`, and records its question. The
    /// connection stays open for the next (a resolver asks A and AAAA on one).
    private func answerQueries(
        on connection: inout Connection, in record: inout Received, from names: SandboxNameService
    ) {
        let kept = record.bytes
        while kept.count >= connection.answeredUpTo + 2 {
            let length = Int(kept[connection.answeredUpTo]) << 8 | Int(kept[connection.answeredUpTo + 1])
            let start = connection.answeredUpTo + 2
            guard kept.count >= start + length else { return }
            connection.answeredUpTo = start + length
            guard let question = DNSQuestion(message: Array(kept[start..<(start + length)])) else { continue }
            let (message, address) = names.answer(question)
            _ = sys_sendAll(connection.fd, [UInt8(message.count >> 8), UInt8(message.count & 0xff)] + message)
            record.answer = .dns
            if record.lookups.count < SandboxNameService.lookupLimit {
                record.lookups.append(
                    .init(
                        request: SandboxReport.NameLookup.dnsPrefix + question.type, name: question.name,
                        pid: connection.pid, answer: address.map(SandboxNameBook.text)))
            }
        }
    }

    /// Reads what waits on `connection` without blocking: how many bytes came, and whether the
    /// sample closed its end.
    private func read(_ connection: Connection, into buffer: inout [UInt8]) -> (Int, Bool) {
        var got = 0
        while true {
            let count: Int?
            do {
                // The sink's end does not block: nil when nothing waits.
                count = try buffer.withUnsafeMutableBytes { try sys_read(connection.fd, into: $0) }
            } catch {
                return (got, true)
            }
            guard let count else { return (got, false) }  // nothing more for now
            if count == 0 { return (got, true) }
            got += count
            var record = received[connection.id, default: Received()]
            record.total += count
            let room = Self.keptBytes - record.bytes.count
            if room > 0 { record.bytes += buffer[..<min(room, count)] }
            received[connection.id] = record
            if record.total >= Self.drainLimit { return (got, false) }
        }
    }
}
