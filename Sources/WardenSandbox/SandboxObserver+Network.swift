// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import SystemPackage
import WardenLinux

/// The observer's network calls (`SandboxNetworkCall`): the sockets it makes and
/// installs for the sample (stand-ins, an i386 program's unix sockets, a connection to the sink).
extension SandboxObserver {
    /// Answers network call `id` of process `pid` (`plan`, with what `call` read), and records
    /// the answer in `call`: the stand-ins, the sink, the name server, or the kernel. False when
    /// the call is no longer waiting (nothing of it is to be counted).
    func answerNetworkCall(
        _ plan: SandboxArgumentPlan, _ call: inout SandboxCall?, id: UInt64, pid: Int32, on listener: SeccompListener
    ) -> Bool {
        guard let networkCall = SandboxNetworkCall.of(plan, call) else {
            // A socketcall that is none of those observed: as the kernel has it.
            return listener.proceed(id)
        }
        var decided: SandboxNetworkAnswer
        // The stand-in an address call is on, if it is on one.
        var onStandIn: UInt64?
        switch networkCall {
        case .name, .option, .receive:
            return answerStandInQuery(networkCall, id: id, pid: pid, on: listener)
        case .listen(let fd):
            // Made by the kernel, on the unix socket; described with the address the stand-in
            // has (a port of its own when it had none, as a TCP listen gives one).
            if let inode = Self.socketInode(fd, of: pid), var standIn = standIns[inode] {
                standIn.bound(to: standIn.local, ephemeralPort: takeEphemeralPort)
                standIns[inode] = standIn
                call?.first = standIn.name(peer: false).value
            }
            return listener.proceed(id)
        case .socket(let domain, let type, let protocolNumber, let viaSocketCall):
            decided =
                viaSocketCall
                ? .forSocketCall(domain: domain, type: type, protocolNumber: protocolNumber)
                : .forSocket(domain: domain, type: type, protocolNumber: protocolNumber)
        case .address(let kind, let fd, let length):
            decided = .forAddress(kind, sockaddr: call?.first, length: length)
            // Only a call on a socket is answered here: on anything else the kernel
            // refuses it (EBADF, ENOTSOCK) without looking at the address, as on a host.
            // Whatever the descriptor is by then, no socket the sample can hold takes an
            // IPv4 or IPv6 address.
            guard decided != .proceed else { break }
            guard let inode = Self.socketInode(fd, of: pid) else {
                decided = .proceed
                break
            }
            onStandIn = standIns[inode] == nil ? nil : inode
            // A connect on a datagram stand-in with the name server at its other end.
            if kind == .connect, datagramStandIns.contains(inode) {
                decided = .forAddress(kind, sockaddr: call?.first, length: length, datagram: true)
            }
            // A DNS query sent with an address on a datagram stand-in whose other end is the
            // name server (musl's resolver, and Rust's through it): delivered there, to be
            // answered, and the send made. (Its answer's source is given by its recvfrom.)
            if kind == .sendto, datagramStandIns.contains(inode), let payload = call?.second,
                UInt64(payload.count) == call?.args.2, DNSQuestion(message: payload) != nil,
                case .some(.some(let address)) = SandboxNetworkAnswer.address(in: call?.first ?? [], length: length),
                address.port == DNSQuestion.port
            {
                guard let delivered = deliver(payload, on: fd, of: pid, for: id, on: listener) else { return false }
                if delivered {
                    decided = .returns(Int64(payload.count))
                    call?.delivered = true
                    standIns[inode]?.sent(to: address, ephemeralPort: takeEphemeralPort)
                }
            }
            // A connection to the sink is connected already, as a TCP socket would be.
            if kind == .connect, sinkConnections.contains(inode) {
                decided = .fail(SandboxNetworkAnswer.EISCONN)
            }
            // A stream stand-in's connect to an outside address, or to the loopback's name
            // server port (DNS over TCP: glibc's after a truncated answer, or with `use-vc`):
            // made, to the sink, which answers DNS there.
            if kind == .connect, standIns[inode]?.type == SandboxNetworkAnswer.stream,
                case .some(.some(let address)) = SandboxNetworkAnswer.address(in: call?.first ?? [], length: length),
                decided == .fail(SandboxNetworkAnswer.ENETUNREACH)
                    || (decided == .fail(SandboxNetworkAnswer.ECONNREFUSED) && address.port == DNSQuestion.port
                        && nameServer != nil)
            {
                guard let connected = connectToSink(fd, of: pid, for: id, on: listener, from: inode, to: address)
                else { return false }
                if let connection = connected {
                    decided = .succeed
                    call?.connection = connection
                }
            }
        case .unreadableSocketCall:
            // Its family could not be read: the kernel must not read it instead.
            decided = .fail(SandboxNetworkAnswer.EFAULT)
        }
        switch (decided, networkCall) {
        case (.standIn, .socket(let domain, _, _, _)), (.unixSocket, .socket(let domain, _, _, _)):
            guard
                let installed = install(
                    decided, isIPv6: domain == SandboxNetworkAnswer.inet6, for: id, of: pid, on: listener)
            else { return false }
            decided = installed
        default: break
        }
        guard Self.answer(id, decided, on: listener) else { return false }
        call?.result = decided.result
        // What a stand-in's bind or connect made of it, for its queries.
        if decided == .succeed, let inode = onStandIn, var standIn = standIns[inode],
            case .address(let kind, _, let length) = networkCall,
            case .some(.some(let address)) = SandboxNetworkAnswer.address(in: call?.first ?? [], length: length)
        {
            switch kind {
            case .bind: standIn.bound(to: address, ephemeralPort: takeEphemeralPort)
            case .connect: standIn.connected(to: address, ephemeralPort: takeEphemeralPort)
            case .sendto: break
            }
            standIns[inode] = standIn
        }
        if case .fail = decided, networkCall.isSocketCreation { refusedSockets += 1 }
        return true
    }

    /// Answers notification `id` as `answer` says; false when it is no longer waiting. A
    /// stand-in is answered when it is installed: here it means nothing is left to send.
    static func answer(
        _ id: UInt64, _ answer: SandboxNetworkAnswer, on listener: SeccompListener
    ) -> Bool {
        switch answer {
        case .proceed: return listener.proceed(id)
        case .standIn, .unixSocket: return true
        case .fail(let code): return listener.answer(id, failingWith: code)
        case .succeed: return listener.answer(id, returning: 0)
        case .returns(let value): return listener.answer(id, returning: value)
        }
    }

    /// The inode of the socket that descriptor `fd` of process `pid` is (`socket:[inode]`); nil
    /// when it is no socket.
    static func socketInode(_ fd: Int32, of pid: Int32) -> UInt64? {
        guard fd >= 0, let target = try? sys_readlink(Array("/proc/\(pid)/fd/\(fd)".utf8)) else { return nil }
        let prefix = Array("socket:[".utf8)
        guard target.starts(with: prefix), target.last == UInt8(ascii: "]") else { return nil }
        return UInt64(String(decoding: target[prefix.count..<(target.count - 1)], as: UTF8.self))
    }

    /// Makes descriptor `fd` of process `pid`, stream stand-in `inode` whose connect `id` to
    /// `address` waits, one end of a connected pair whose other end goes to the sink, keeping
    /// its blocking mode and close-on-exec: the connection's id, to answer the call as made;
    /// `.some(nil)` when it should fail as unreachable after all (no sink, no room, no pair);
    /// nil when the call is no longer waiting.
    func connectToSink(
        _ fd: Int32, of pid: Int32, for id: UInt64, on listener: SeccompListener, from inode: UInt64,
        to address: SandboxNetworkAnswer.Address
    ) -> Int?? {
        guard let sink, sink.hasRoom, let flags = sys_descriptorFlags(fd, ofProcess: pid),
            let (sampleEnd, peer) = try? sys_unixStandInPair(
                type: SandboxNetworkAnswer.stream, nonBlocking: flags & O_NONBLOCK != 0)
        else { return .some(nil) }
        defer { sys_close(sampleEnd) }
        do {
            try listener.replaceDescriptor(
                fd, with: sampleEnd, whileWaiting: id, closeOnExec: flags & O_CLOEXEC != 0)
        } catch {
            sys_close(peer)
            return error.errno.rawValue == ENOENT ? nil : .some(nil)
        }
        let connection = nextConnection
        nextConnection += 1
        sink.adopt(peer, id: connection, port: address.port, pid: pid)
        // The stand-in is gone (closed in the sample as its descriptor was replaced); the
        // connection answers its queries now.
        if let connected = try? sys_fstat(sampleEnd).inode {
            sinkConnections.insert(connected)
            if var standIn = standIns[inode] {
                standIn.connected(to: address, ephemeralPort: takeEphemeralPort)
                standIns[connected] = standIn
            }
        }
        standIns[inode] = nil
        return connection
    }

    /// Makes the socket `answer` says (a stand-in, or a unix socket for an i386 socketcall, not
    /// bound) in the jail's network namespace and installs it in process `pid` as what its call
    /// `id` returns: `answer` when it was, `.fail` when the call is to fail instead (still to be
    /// answered), nil when the call is no longer waiting.
    ///
    /// The stand-in is made in the jail's namespace, not this process's: a unix socket's
    /// abstract names are those of the namespace it was made in, and on the host's a sample
    /// could reach (or claim) a daemon's abstract socket. This thread joins it at the run's
    /// first stand-in, once the namespace's descriptor is open and the call is known to be
    /// still waiting (its pid has not been reused); the thread is the run's own and ends with it.
    func install(
        _ answer: SandboxNetworkAnswer, isIPv6: Bool, for id: UInt64, of pid: Int32, on listener: SeccompListener
    ) -> SandboxNetworkAnswer? {
        let (type, nonBlocking, closeOnExec, unix): (Int32, Bool, Bool, Bool)
        switch answer {
        case .standIn(let kind, let nonBlock, let cloexec):
            (type, nonBlocking, closeOnExec, unix) = (kind, nonBlock, cloexec, false)
        case .unixSocket(let kind, let nonBlock, let cloexec):
            (type, nonBlocking, closeOnExec, unix) = (kind, nonBlock, cloexec, true)
        default: return answer
        }
        if !inJailNetwork {
            do {
                try sys_joinNetworkNamespace(ofProcess: pid) { listener.isWaiting(id) }
                inJailNetwork = true
            } catch {
                return error.errno.rawValue == ESRCH ? nil : .fail(SandboxNetworkAnswer.EPERM)
            }
        }
        // A datagram one is one end of a pair, the name server at the other (up to its limit).
        let standIn: FileDescriptor
        var peer: FileDescriptor?
        do {
            if !unix, type == SandboxNetworkAnswer.datagram, nameServer != nil,
                datagramStandIns.count < SandboxNameService.peerLimit
            {
                (standIn, peer) = try sys_unixStandInPair(type: type, nonBlocking: nonBlocking)
            } else {
                standIn = try sys_unixStandInSocket(type: type, nonBlocking: nonBlocking, autobind: !unix)
            }
        } catch {
            return .fail(error.errno.rawValue)
        }
        defer { sys_close(standIn) }
        do {
            _ = try listener.answer(id, installing: standIn, closeOnExec: closeOnExec)
            let inode = try? sys_fstat(standIn).inode
            if let peer, let nameServer, let inode {
                datagramStandIns.insert(inode)
                nameServer.adopt(peer)
            } else if let peer {
                sys_close(peer)
            }
            if !unix, let inode { standIns[inode] = SandboxStandIn(isIPv6: isIPv6, type: type) }
            return answer
        } catch {
            if let peer { sys_close(peer) }
            // EMFILE, say: the sample is at its descriptor limit, and its call fails so.
            return error.errno.rawValue == ENOENT ? nil : .fail(error.errno.rawValue)
        }
    }
}

extension SandboxObserver {
    /// Answers a stand-in's query `id` (`SandboxNetworkCall.name` or `.option`) of process `pid` as
    /// the IPv4 or IPv6 socket it stands for would (`SandboxStandIn`), writing what the call
    /// returns into the sample's memory while the call waits. A query on any other descriptor,
    /// or of another level, goes on to the kernel. False when the call is no longer waiting.
    func answerStandInQuery(
        _ query: SandboxNetworkCall, id: UInt64, pid: Int32, on listener: SeccompListener
    ) -> Bool {
        let fd: Int32
        switch query {
        case .name(let descriptor, _, _, _): fd = descriptor
        case .receive(let descriptor, _, _, _, _, _): fd = descriptor
        // (i386's are notified at every level: socketcall's is in memory the filter cannot read.)
        case .option(let descriptor, let level, let name, _, _, let set)
        where SandboxStandIn.answers(level: level, name: name, set: set):
            fd = descriptor
        default: return listener.proceed(id)
        }
        guard let inode = Self.socketInode(fd, of: pid), var standIn = standIns[inode] else {
            return listener.proceed(id)
        }
        if case .receive = query, !datagramStandIns.contains(inode) || standIn.source == nil {
            return listener.proceed(id)
        }
        // What is written goes to the process whose call waits: its pid has not been reused
        // (the answer checks again, for what was read).
        guard listener.isWaiting(id) else { return false }
        let outcome: Result<Void, SandboxCallFailure>
        switch query {
        case .name(_, let address, let lengthAddress, let peer):
            outcome = standIn.name(peer: peer).flatMap { name in
                Self.room(at: lengthAddress, of: pid).flatMap { room in
                    // Cut to the room there; the length written back is the whole one.
                    Self.write(
                        Array(name.prefix(Int(room))), at: address, length: name.count, at: lengthAddress, of: pid)
                }
            }
        case .option(_, let level, let name, let value, let length, set: true):
            let bytes =
                length == 0
                ? []
                : sys_readProcessMemory(
                    pid, address: value, length: Int(min(length, UInt64(SandboxStandIn.optionLimit))))
            if let bytes {
                outcome = standIn.setOption(level: level, name: name, value: bytes).map { .failure($0) } ?? .success(())
                standIns[inode] = standIn
            } else {
                outcome = .failure(SandboxCallFailure(errno: SandboxNetworkAnswer.EFAULT))
            }
        case .option(_, let level, let name, let value, let lengthAddress, set: false):
            outcome = Self.room(at: lengthAddress, of: pid).flatMap { room in
                standIn.option(level: level, name: name, room: Int(room)).flatMap { bytes in
                    Self.write(bytes, at: value, length: bytes.count, at: lengthAddress, of: pid)
                }
            }
        case .receive(_, let buffer, let length, let flags, let address, let lengthAddress):
            return answerReceive(
                from: standIn, fd: fd, buffer: buffer, length: length, flags: flags, address: address,
                lengthAddress: lengthAddress, id: id, pid: pid, on: listener)
        default: outcome = .success(())
        }
        switch outcome {
        case .success: return Self.answer(id, .succeed, on: listener)
        case .failure(let failure): return Self.answer(id, .fail(failure.errno), on: listener)
        }
    }

    /// Answers recvfrom `id` on datagram stand-in `standIn` (descriptor `fd` of process `pid`,
    /// the name server at its other end): the message waiting there, written at `buffer` (up to
    /// `length` bytes), and the address it came from as the socket it stands for would give it
    /// (the name server the query went to), at `address`. With no message waiting, a receive that
    /// would not wait fails (EAGAIN), and one that would wait goes on to the kernel (whose
    /// source address is then the unix socket's). False when the call is no longer waiting.
    private func answerReceive(
        from standIn: SandboxStandIn, fd: Int32, buffer: UInt64, length: UInt64, flags: UInt64, address: UInt64,
        lengthAddress: UInt64, id: UInt64, pid: Int32, on listener: SeccompListener
    ) -> Bool {
        guard let source = standIn.source, let copy = try? sys_descriptor(fd, ofProcess: pid) else {
            return listener.proceed(id)
        }
        defer { sys_close(copy) }
        let message: [UInt8]?
        do {
            message = try sys_receiveNow(
                copy, limit: Int(min(length, 65_536)), peek: flags & UInt64(MSG_PEEK) != 0)
        } catch {
            return Self.answer(id, .fail(error.errno.rawValue), on: listener)
        }
        guard let message else {
            let nonBlocking =
                flags & UInt64(MSG_DONTWAIT) != 0 || (sys_descriptorFlags(fd, ofProcess: pid) ?? 0) & O_NONBLOCK != 0
            return nonBlocking
                ? Self.answer(id, .fail(EAGAIN), on: listener) : listener.proceed(id)
        }
        do {
            try sys_writeProcessMemory(pid, address: buffer, message)
        } catch {
            return Self.answer(id, .fail(SandboxNetworkAnswer.EFAULT), on: listener)
        }
        if address != 0 {
            let written = Self.room(at: lengthAddress, of: pid).flatMap { room in
                Self.write(
                    Array(source.prefix(Int(room))), at: address, length: source.count, at: lengthAddress, of: pid)
            }
            if case .failure(let failure) = written {
                return Self.answer(id, .fail(failure.errno), on: listener)
            }
        }
        return Self.answer(id, .returns(Int64(message.count)), on: listener)
    }

    /// Sends `payload` (a DNS query) on descriptor `fd` of process `pid`, a datagram stand-in
    /// whose other end is the name server, as that process, for its sendto `id`: true when it
    /// was sent, false when it could not be (the call then fails as undelivered), nil when the
    /// call is no longer waiting.
    func deliver(_ payload: [UInt8], on fd: Int32, of pid: Int32, for id: UInt64, on listener: SeccompListener)
        -> Bool?
    {
        // Its pid is still the caller's (the descriptor taken is the sample's).
        guard listener.isWaiting(id) else { return nil }
        guard let copy = try? sys_descriptor(fd, ofProcess: pid) else { return false }
        defer { sys_close(copy) }
        return (try? sys_sendNow(copy, payload, asProcess: pid)) == payload.count
    }

    /// The `socklen_t` at `address` in `pid`'s memory: the room a query's caller gave.
    private static func room(at address: UInt64, of pid: Int32) -> Result<Int32, SandboxCallFailure> {
        guard let bytes = sys_readProcessMemory(pid, address: address, length: 4), bytes.count == 4 else {
            return .failure(SandboxCallFailure(errno: SandboxNetworkAnswer.EFAULT))
        }
        let room = bytes.withUnsafeBytes { Int32(littleEndian: $0.loadUnaligned(as: Int32.self)) }
        return room < 0 ? .failure(SandboxCallFailure(errno: SandboxNetworkAnswer.EINVAL)) : .success(room)
    }

    /// Writes `bytes` at `address` and `length` as a `socklen_t` at `lengthAddress`, in `pid`'s
    /// memory, as the kernel answers a query.
    private static func write(
        _ bytes: [UInt8], at address: UInt64, length: Int, at lengthAddress: UInt64, of pid: Int32
    ) -> Result<Void, SandboxCallFailure> {
        do {
            try sys_writeProcessMemory(pid, address: address, bytes)
            try sys_writeProcessMemory(pid, address: lengthAddress, SandboxStandIn.intBytes(Int32(length)))
            return .success(())
        } catch {
            return .failure(SandboxCallFailure(errno: SandboxNetworkAnswer.EFAULT))
        }
    }

    /// A port for a stand-in that gets one without asking (an unbound one's connect, a bind to
    /// port 0): from the range Linux gives them (32768-60999), in turn.
    func takeEphemeralPort() -> Int {
        defer { nextEphemeralPort = nextEphemeralPort == 60999 ? 32768 : nextEphemeralPort + 1 }
        return nextEphemeralPort
    }
}
