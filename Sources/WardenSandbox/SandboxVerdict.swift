// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import WardenCore

/// The short verdict of a sandbox report: each sentence restates fields of the report, nothing else.
enum SandboxVerdict {
    /// Each sentence is one line, and any control character in what the sample chose (a host
    /// name, a path, a program's name) shows as `\xNN` (`TerminalText`): verdicts are read in
    /// terminals, in this command's output and in alert reports.
    static func sentences(_ report: SandboxReport) -> [String] {
        facts(report).map { TerminalText.escaped($0, keepingLineBreaks: false) }
    }

    private static func facts(_ report: SandboxReport) -> [String] {
        if let setupError = report.setupError { return ["The sample did not run: \(setupError)."] }
        var out: [String] = []
        let left = report.stillRunning
        let named = Self.listed(
            left.map {
                "pid \($0.pid) \($0.commandLine.isEmpty ? "(no command line)" : $0.commandLine)"
                    + ($0.name.map { " (shown by ps as \($0))" } ?? "")
            }, limit: 3, separator: "; ")
        let daemons = left.filter(\.ownSession).count
        let daemonNote = daemons == 0 ? "" : ", \(daemons) of them in a session of its own (a daemon)"
        if report.timedOut && !report.exit.atTimeLimit {
            // The sample ended; what it started did not.
            let ending =
                report.exit.code.map { "exited with code \($0)" } ?? "was killed by signal \(report.exit.signal ?? 0)"
            // (An empty list: they could not be read before the kill.)
            let which = left.isEmpty ? "processes" : "\(left.count) process(es)"
            out.append(
                "It \(ending), and \(which) it left behind were still running at the time limit"
                    + (left.isEmpty ? "" : "\(daemonNote): \(named)")
                    + "; every process in its pid namespace was killed then.")
        } else if report.timedOut {
            out.append(
                "It was still running after the time limit; every process in its pid namespace was killed"
                    + (left.isEmpty ? "." : " (\(left.count) running then\(daemonNote): \(named))."))
        } else if let code = report.exit.code {
            out.append("It exited with code \(code) after \(report.durationMs) ms.")
        } else if let signal = report.exit.signal {
            out.append(
                signal == 31
                    ? "It was killed by SIGSYS: it made a call the filter kills for."
                    : "It was killed by signal \(signal) after \(report.durationMs) ms.")
        }
        let howItEnded = out.count
        if let resources = report.resources {
            if let kills = resources.oomKills, kills > 0 {
                let limit = resources.memoryLimitBytes.map { " (\($0 >> 20) MiB for all its processes)" } ?? ""
                out.append(
                    "The sandbox's memory limit\(limit) stopped it: the kernel killed \(kills) of its processes for memory."
                )
            }
            if let hits = resources.processLimitHits, hits > 0 {
                let limit = resources.processLimit.map { " of \($0) processes" } ?? ""
                out.append("It reached the sandbox's limit\(limit): \(hits) of its forks were refused.")
            }
        }
        if report.i386Calls > 0 {
            out.append(
                "\(report.i386Calls) of its observed calls went through the 32-bit x86 (i386) ABI: a 32-bit program's, or int 0x80 from a 64-bit one."
            )
        }
        if !report.denied.isEmpty {
            let list = report.denied.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
            out.append("The filter refused or killed: \(list).")
        }
        // With no observer (syscalls empty) the filter refuses every family but AF_UNIX; an
        // observed run has IPv4 and IPv6 stream and datagram sockets stood in for, so its
        // refusals are of other kinds.
        if let sockets = report.denied["socket"] {
            if report.syscalls.isEmpty {
                out.append(
                    "Its \(sockets) refused socket call(s) asked for a family other than AF_UNIX, the only one the filter allows (an IPv4 or IPv6 socket, for instance); where it meant to connect is not known."
                )
            } else {
                let raw = report.network.filter { $0.syscall == "socket" && $0.result != "ok" && $0.result != nil }
                let kinds = raw.isEmpty ? "" : " (\(Self.counted(raw.map { "\($0.family) \($0.type ?? "?")" })))"
                out.append(
                    "Its \(sockets) refused socket call(s) asked for a kind the jail does not give: a family other than AF_UNIX, IPv4 and IPv6 (a packet or netlink socket, say), or a raw IPv4 or IPv6 socket\(kinds)."
                )
            }
        }
        // An i386 program's socketcall(2) carries socket's arguments in memory the filter
        // cannot read: with no observer to read them, each of its socket creations is refused,
        // whatever the family.
        if let sockets = report.denied["socketcall"] {
            out.append(
                "Its \(sockets) socket creation(s) through socketcall(2) (the 32-bit x86 way) were refused whatever the family, which the filter cannot read there and no observer read; where it meant to connect is not known."
            )
        }
        let standIns = report.network.filter { $0.syscall == "socket" && $0.result == "ok" }
        if !standIns.isEmpty {
            out.append(
                "It made \(standIns.count) IPv4 or IPv6 socket(s) (\(Self.counted(standIns.map { "\($0.family) \($0.type ?? "?")" }))). "
                    + Self.standInNote)
        }
        // glibc connects to nscd's socket on its own for every user, group and host lookup:
        // that says nothing of the sample (its host lookups have a sentence of their own).
        let attempts = report.network.filter {
            ["connect", "sendto", "sendmsg", "sendmmsg"].contains($0.syscall)
                && ($0.family != "AF_UNIX" || $0.address != SandboxNameService.socketPath)
        }
        if !attempts.isEmpty {
            out.append("It tried to connect or send: \(Self.endpoints(attempts)).")
        }
        // What it sent once a connection seemed made: its C2's protocol.
        let sunk = report.network.filter { $0.sentBytes != nil && $0.syscall == "connect" }
        func target(_ attempt: SandboxReport.NetworkAttempt) -> String {
            [attempt.family, attempt.address, attempt.port.map(String.init), attempt.hostName.map { "(\($0))" }]
                .compactMap { $0 }.joined(separator: " ")
        }
        func preview(_ attempt: SandboxReport.NetworkAttempt) -> String {
            attempt.sent.map { $0.count > 160 ? String($0.prefix(160)) + "…" : $0 } ?? ""
        }
        // A beacon that reconnects sends the same each time: one sentence for each distinct
        // target and content, with how many times.
        var kinds: [(attempt: SandboxReport.NetworkAttempt, times: Int)] = []
        for attempt in sunk {
            if let index = kinds.firstIndex(where: {
                target($0.attempt) == target(attempt) && $0.attempt.sentBase64 == attempt.sentBase64
                    && $0.attempt.sentBytes == attempt.sentBytes
            }) {
                kinds[index].times += 1
            } else {
                kinds.append((attempt, 1))
            }
        }
        for (attempt, times) in kinds.prefix(3) {
            let (target, preview) = (target(attempt), preview(attempt))
            let bytes = attempt.sentBytes ?? 0
            let connections = times == 1 ? "its connection" : "each of its \(times) connections"
            let answered = attempt.sinkAnswer.map { " The sink answered \($0)." } ?? ""
            if attempt.sinkAnswer == SandboxSinkAnswer.dns.summary {
                // Its questions are among the lookups, with their answers.
                out.append(
                    "Over \(connections) to \(target), made to the jail's sink, it sent DNS queries over TCP (\(bytes) byte(s)), each answered from the jail's name service."
                )
            } else if let name = attempt.tlsServerName {
                out.append(
                    "Over \(connections) to \(target), made to the jail's sink, it began TLS for the server name \(name) (\(bytes) byte(s) sent)."
                        + answered
                )
            } else {
                out.append(
                    bytes == 0
                        ? "\(times == 1 ? "Its connection" : "Each of its \(times) connections") to \(target), made to the jail's sink, carried nothing before the sink hung up."
                        : "Over \(connections) to \(target), made to the jail's sink, it sent \(bytes) byte(s): \(preview)"
                            + (answered.isEmpty ? "" : (preview.hasSuffix(".") ? "" : ".") + answered)
                )
            }
        }
        if kinds.count > 3 {
            let more = kinds.dropFirst(3).reduce(0) { $0 + $1.times }
            out.append("It made \(more) more connection(s) to the sink.")
        }
        // Datagrams it tried to send (never delivered), but DNS queries: those are lookups.
        let datagrams = report.network.filter {
            $0.syscall.hasPrefix("send") && $0.sentBytes != nil && $0.port != DNSQuestion.port
        }
        for attempt in datagrams.prefix(2) {
            out.append(
                "It tried to send a datagram of \(attempt.sentBytes ?? 0) byte(s) to \(target(attempt)), not delivered: \(preview(attempt))"
            )
        }
        if datagrams.count > 2 { out.append("It tried to send \(datagrams.count - 2) more datagram(s).") }
        let binds = report.network.filter { $0.syscall == "bind" }
        if !binds.isEmpty {
            out.append("It tried to bind sockets, to listen or receive on: \(Self.endpoints(binds)).")
        }
        let listens = report.network.filter { $0.syscall == "listen" }
        if !listens.isEmpty {
            out.append("It listened for connections on: \(Self.endpoints(listens)).")
        }
        // Through glibc (the jail's nscd socket), or by DNS queries of its own.
        let queries = report.lookups.filter { $0.request.hasPrefix(SandboxReport.NameLookup.dnsPrefix) }
        let asked = report.lookups.filter { !$0.request.hasPrefix(SandboxReport.NameLookup.dnsPrefix) }
        if !asked.isEmpty {
            let names = asked.map { "\($0.name) (\($0.answer ?? "not found"))" }
                .reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
            out.append(
                "It looked up \(names.count) host name(s) or address(es) through glibc, answered by the jail's name "
                    + "service: \(Self.listed(names, limit: 5)).")
        }
        if !queries.isEmpty {
            let names = queries.map {
                "\($0.name) (\($0.request.dropFirst(SandboxReport.NameLookup.dnsPrefix.count))\($0.answer.map { ": \($0)" } ?? ""))"
            }
            .reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
            out.append(
                "It sent DNS queries of its own, not through glibc, for \(names.count) name(s): "
                    + "\(Self.listed(names, limit: 5)); none reached a name server outside: the jail's own answered, "
                    + "or the query was not delivered.")
        }
        // (Not when names were answered "not found": only localhost had an address then.)
        if report.lookups.contains(where: { $0.answer.map(SandboxNameBook.isGiven) == true }) {
            out.append(Self.nameNote)
        }
        let renames = report.processes.filter { $0.syscall == "prctl" }.compactMap(\.renamedTo)
        let spawned = report.processes.filter { $0.path != SandboxReport.Process.theSample && $0.syscall != "prctl" }
        if !spawned.isEmpty {
            out.append(
                "It made \(spawned.count) call(s) that start a process or a program (\(Array(Set(spawned.map(\.syscall))).sorted().joined(separator: ", ")))."
            )
        }
        // What it ran, as it was told to: a dropper's next steps are in these arguments. A
        // shell's PATH search fails at each directory before the one that has the program.
        let execs = spawned.filter { $0.path != nil }
        out += Self.outcomes(
            execs, result: \.result,
            describe: { process in
                let command = process.commandLine ?? process.path ?? ""
                return command.count > 160 ? String(command.prefix(160)) + "…" : command
            },
            done: "It ran", trying: "run", noun: "program(s)", limit: 5, separator: "; ")
        // An exec through a memfd's descriptor: a program with no file on any mount.
        let fileless = Array(Set(spawned.compactMap(\.path).filter { $0.hasPrefix("/memfd:") })).sorted()
        if !fileless.isEmpty {
            out.append("It tried to execute from memory (a memfd: fileless execution): \(Self.listed(fileless)).")
        }
        // What `ps` and `top` would have shown instead of the program's name.
        if !renames.isEmpty {
            let names = renames.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
            out.append(
                "It renamed itself as ps shows it (prctl PR_SET_NAME): \(Self.listed(names.map(ShellQuote.quote))).")
        }
        out += Self.outcomes(
            report.files.filter { $0.syscall == "memfd_create" }, result: \.result, describe: \.path,
            done: "It created", trying: "create", noun: "file(s) that exist only in memory (memfd_create)")
        out += Self.sensitiveAccesses(report)
        out += Self.outcomes(
            // (`> /dev/null` opens it to create or truncate: that says nothing.)
            report.files.filter {
                $0.created && $0.syscall != "memfd_create" && !Self.linking.contains($0.syscall)
                    && $0.path != "/dev/null"
            },
            result: \.result, describe: \.path, done: "It created or truncated", trying: "create or truncate",
            noun: "file(s)")
        // What a dropper does next: make a file executable, remove or rename its traces.
        out += Self.outcomes(
            report.files.filter { ["chmod", "fchmod", "fchmodat"].contains($0.syscall) }, result: \.result,
            describe: { "\($0.path) \($0.detail ?? "")" }, done: "It changed the mode of",
            trying: "change the mode of", noun: "file(s)")
        out += Self.outcomes(
            report.files.filter { Self.linking.contains($0.syscall) }, result: \.result,
            describe: { "\($0.path) \($0.detail ?? "")" }, done: "It made", trying: "make", noun: "link(s)",
            separator: "; ")
        out += Self.outcomes(
            report.files.filter { ["mkdir", "mkdirat"].contains($0.syscall) }, result: \.result, describe: \.path,
            done: "It made", trying: "make", noun: "directory(ies)")
        out += Self.outcomes(
            report.files.filter { ["unlink", "unlinkat", "rename", "renameat", "renameat2"].contains($0.syscall) },
            result: \.result, describe: \.path, done: "It deleted or renamed", trying: "delete or rename",
            noun: "path(s)")
        out += Self.outcomes(
            report.signals.map(Self.splitResult), result: \.result, describe: \.call, done: "It sent",
            trying: "send", noun: "signal(s)")
        if !report.written.isEmpty {
            // Where, from the paths themselves: /tmp, /dev/shm or both.
            let places = ["/tmp/", "/dev/shm/"].filter { place in report.written.contains { $0.path.hasPrefix(place) } }
            let named = places.map { String($0.dropLast()) }.joined(separator: " and ")
            out.append(
                report.writtenTruncated
                    ? "It left more than \(report.written.count) file(s) in \(named); the first \(report.written.count) "
                        + "are kept as evidence."
                    : "It left \(report.written.count) file(s) in \(named), kept as evidence.")
        }
        if out.count == howItEnded { out.append("Nothing else was observed.") }
        if let reason = report.resultsError,
            !report.files.isEmpty || report.processes.count > 1 || !report.signals.isEmpty
        {
            out.append(
                "What its calls came to could not be traced (\(reason)): where it tried, the outcome is not known.")
        }
        return out
    }

    /// What calls of one kind came to, as their results say: those that succeeded (`done`),
    /// those the kernel refused (each with its error), and those whose result was not seen
    /// (the trace was not available, or lost that exit). Seen only before the kernel ran it, a
    /// call is never said to have done what it may not have.
    static func outcomes<Entry>(
        _ entries: [Entry], result: (Entry) -> String?, describe: (Entry) -> String, done: String, trying: String,
        noun: String, limit: Int = 3, separator: String = ", "
    ) -> [String] {
        let succeeded = entries.filter { result($0) == "ok" }
        let refused = entries.filter { result($0).map { $0 != "ok" } ?? false }
        let unseen = entries.filter { result($0) == nil }
        var out: [String] = []
        if !succeeded.isEmpty {
            out.append(
                "\(done) \(succeeded.count) \(noun): \(listed(succeeded.map(describe), limit: limit, separator: separator))."
            )
        }
        if !refused.isEmpty {
            let more = succeeded.isEmpty ? "" : " more"
            let list = refused.map { "\(describe($0)) (\(result($0) ?? ""))" }
            out.append(
                "It tried to \(trying) \(refused.count)\(more) \(noun), refused: \(listed(list, limit: limit, separator: separator))."
            )
        }
        if !unseen.isEmpty {
            let more = succeeded.isEmpty && refused.isEmpty ? "" : " more"
            out.append(
                "It tried to \(trying) \(unseen.count)\(more) \(noun), with no result seen: "
                    + "\(listed(unseen.map(describe), limit: limit, separator: separator)).")
        }
        return out
    }

    /// A `signals` entry as its call and its result: `kill(1, 9) -> EPERM`.
    static func splitResult(_ entry: String) -> (call: String, result: String?) {
        guard let range = entry.ranges(of: " -> ").last else { return (entry, nil) }
        return (String(entry[..<range.lowerBound]), String(entry[range.upperBound...]))
    }

    /// Attempts on the places that say most about intent (`SensitivePath`): credentials opened
    /// in any way, persistence places written, container runtime sockets opened or connected to.
    static func sensitiveAccesses(_ report: SandboxReport) -> [String] {
        var credentials: [String] = []
        var persistence: [String] = []
        var runtimes: [String] = []
        // Each place once, with what the call got where that was seen: `/etc/shadow (EACCES)`.
        func note(_ path: String, _ result: String?, into list: inout [String]) {
            let entry = path + (result.map { " (\($0))" } ?? "")
            if !list.contains(entry) { list.append(entry) }
        }
        for access in report.files {
            let opens = ["open", "openat", "openat2", "creat"].contains(access.syscall)
            let detail = access.detail ?? ""
            let writes =
                access.syscall == "creat" || access.created || detail.hasPrefix("O_WRONLY")
                || detail.hasPrefix("O_RDWR")
                || detail.contains("O_TRUNC") || detail.contains("O_APPEND")
            // A rename's target is where the file lands: "to <path>".
            let renamedTo =
                access.syscall.hasPrefix("rename") && detail.hasPrefix("to ") ? String(detail.dropFirst(3)) : nil
            switch SensitivePath.classify(access.path) {
            case .credentials? where opens: note(access.path, access.result, into: &credentials)
            case .persistence?
            where (opens && writes) || Self.linking.contains(access.syscall) || access.syscall.hasPrefix("mkdir"):
                note(access.path, access.result, into: &persistence)
            case .containerRuntime? where opens: note(access.path, access.result, into: &runtimes)
            default: break
            }
            if let renamedTo, SensitivePath.classify(renamedTo) == .persistence {
                note(renamedTo, access.result, into: &persistence)
            }
        }
        for attempt in report.network where attempt.family == "AF_UNIX" {
            if let address = attempt.address, SensitivePath.classify(address) == .containerRuntime {
                note(address, attempt.result, into: &runtimes)
            }
        }
        var out: [String] = []
        if !credentials.isEmpty { out.append("It tried to open credential files: \(listed(credentials, limit: 5)).") }
        if !persistence.isEmpty {
            out.append(
                "It tried to write where programs are started again (persistence): \(listed(persistence, limit: 5)).")
        }
        if !runtimes.isEmpty { out.append("It tried to reach a container runtime's socket: \(listed(runtimes)).") }
        return out
    }

    /// Calls that make a new name (a hard link or a symlink) at their path.
    static let linking: Set<String> = ["link", "linkat", "symlink", "symlinkat"]

    /// What the report's `result` of a stood-in call means, said once.
    static let nameNote =
        "The jail's name service answers each host name with an address of its own in 198.18.0.0/15 (RFC 2544's benchmarking range, routed nowhere; localhost is the loopback), an address's name and an IPv6-only request with not found, and a DNS question other than A with no record: a connect to such an address is made to the sink, under the name."

    static let standInNote =
        "The jail has no network: each IPv4 or IPv6 socket was a unix socket standing in, and each connect, send or bind with an IPv4 or IPv6 address was answered by the supervisor, never made (ENETUNREACH: no route; ECONNREFUSED: a loopback port nobody listens on; ok: a TCP connect to an outside address or to the loopback's port 53, made to the jail's sink, which keeps what the sample sends, answers a whole HTTP request with a 200 and an empty body, a TLS ClientHello with an alert and DNS over TCP from the jail's name service, and otherwise hangs up after half a second without a byte; a bind to a loopback or wildcard address; or a datagram socket's connect to the loopback or to a name server's port, where the jail's name server answers). Asked for its addresses or its IP-level options, a stand-in answered as the socket asked for would."

    /// `AF_INET 203.0.113.7 4444 (ENETUNREACH); AF_UNIX /run/x`: each endpoint once, sorted, the
    /// first ten (a scanner's hundreds are in `network`).
    static func endpoints(_ attempts: [SandboxReport.NetworkAttempt]) -> String {
        let targets = attempts.map {
            [
                $0.family, $0.address, $0.port.map(String.init), $0.hostName.map { "(\($0))" },
                $0.result.map { "(\($0))" },
            ]
            .compactMap { $0 }
            .joined(separator: " ")
        }
        return listed(Array(Set(targets)).sorted(), limit: 10, separator: "; ")
    }

    /// `AF_INET SOCK_STREAM ×2, AF_INET6 SOCK_DGRAM ×1`.
    static func counted(_ kinds: [String]) -> String {
        let counts = kinds.reduce(into: [String: Int]()) { $0[$1, default: 0] += 1 }
        return counts.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
    }

    /// The first few items, and how many more there were.
    private static func listed(_ items: [String], limit: Int = 3, separator: String = ", ") -> String {
        let shown = items.prefix(limit).joined(separator: separator)
        return items.count > limit ? shown + " and \(items.count - limit) more" : shown
    }
}
