// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import WardenCore
import WardenStore

/// What a sample did in the sandbox: the `sandbox run` of DESIGN.md's JSON contract.
public struct SandboxReport: Codable, Sendable {
    /// How the sample's own process ended.
    public struct Exit: Codable, Sendable, Equatable {
        public var code: Int32?
        public var signal: Int32?
        /// The signal is the time limit's SIGKILL: the sample itself was still running then.
        public var atTimeLimit: Bool

        public init(code: Int32?, signal: Int32?, atTimeLimit: Bool = false) {
            self.code = code
            self.signal = signal
            self.atTimeLimit = atTimeLimit
        }
    }

    public struct NetworkAttempt: Codable, Sendable, Equatable {
        /// `socket`, `connect`, `sendto` or `bind`.
        public var syscall: String
        public var family: String
        public var address: String?
        public var port: Int?
        /// A socket's type (`SOCK_STREAM`, `SOCK_DGRAM`, …), for a `socket` entry.
        public var type: String? = nil
        /// What the call got: `ok` or an errno's name, as the observer answered it
        /// (`SandboxNetworkAnswer`; `ENETUNREACH`: the jail has no network) or as the kernel did
        /// (`SandboxCallResults`). Nil: not seen.
        public var result: String? = nil
        /// For a connect to an outside address, made to the jail's sink: how many bytes the sample
        /// sent before the sink hung up, the first of them for reading (`\xNN` for control bytes
        /// and invalid UTF-8), and exactly (base64), up to 4 KiB. For a sendto to an IPv4 or IPv6
        /// address (never delivered): the datagram's length and its first 512 bytes.
        public var sentBytes: Int? = nil
        public var sent: String? = nil
        public var sentBase64: String? = nil
        /// For an address the jail's name service gave (`NameLookup.answer`), the host name it
        /// was given for: the name the sample connected to.
        public var hostName: String? = nil
        /// The server name in a TLS ClientHello the sample sent there (`TLSClientHello`).
        public var tlsServerName: String? = nil
        /// What the sink answered before it hung up (`SandboxSinkAnswer`): `HTTP 200 with an
        /// empty body` for a whole HTTP request, `a TLS handshake_failure alert` for a
        /// ClientHello; nil when it answered nothing.
        public var sinkAnswer: String? = nil

        public init(
            syscall: String, family: String, address: String? = nil, port: Int? = nil, type: String? = nil,
            result: String? = nil
        ) {
            self.syscall = syscall
            self.family = family
            self.address = address
            self.port = port
            self.type = type
            self.result = result
        }
    }

    /// A host name (or address) the sample asked glibc to resolve, through the jail's nscd socket
    /// (`SandboxNameService`); or one it asked a name server for itself, in a DNS query answered
    /// by the jail's name server or never delivered.
    public struct NameLookup: Codable, Sendable, Equatable {
        /// `getaddrinfo`, `gethostbyname`, `gethostbyaddr`, … asked of glibc; or `DNS A`,
        /// `DNS AAAA`, … for the question of a DNS query the sample sent itself (`DNSQuestion`).
        public var request: String
        public var name: String
        public var pid: Int32
        /// The address the jail's name service answered with (`SandboxNameBook`: 198.18.0.0/15,
        /// routed nowhere; what the sample then connected to is under this `hostName` in
        /// `network`); nil when it answered "not found" or no record, or the query was not
        /// delivered.
        public var answer: String? = nil

        public init(request: String, name: String, pid: Int32, answer: String? = nil) {
            self.request = request
            self.name = name
            self.pid = pid
            self.answer = answer
        }

        /// How `request` starts for a DNS query the sample sent itself.
        public static let dnsPrefix = "DNS "
    }

    public struct FileAccess: Codable, Sendable, Equatable {
        public var syscall: String
        public var path: String
        /// open flags (`O_WRONLY|O_CREAT`), chmod modes, rename targets.
        public var detail: String?
        public var created: Bool
        /// The path as the sample passed it, when it was relative to its working directory and
        /// `path` is that made absolute.
        public var passedAs: String? = nil
        /// The exact bytes of `path` when they are not UTF-8 (`path` is then a display form
        /// with `\xNN` escapes), as everywhere paths go into JSON.
        public var pathBase64: String? = nil
        /// Set when `path` is as the sample passed it, relative to this directory descriptor of
        /// its process: a read of an ordinarily named file through a descriptor is not made
        /// absolute (a readlink for each would cost more than the rest of its notification).
        public var directoryDescriptor: Int32? = nil
        /// What the kernel returned: `ok`, or the error's name (`EROFS`, `ENOENT`); nil when the
        /// call's exit was not seen (`SandboxCallResults`).
        public var result: String? = nil
    }

    public struct Process: Codable, Sendable, Equatable {
        public var syscall: String
        /// The program, for execve/execveat.
        public var path: String?
        public var pid: Int32
        /// The argument vector an exec passed (argv[0] first): what a dropper's `curl`, `wget`
        /// or `chmod` was told. At most 64, each cut at 1,024 bytes.
        public var arguments: [String]?
        /// Present (false) only when the vector went on past what was read.
        public var argumentsComplete: Bool?
        /// The path as the sample passed it, when it named a descriptor (`/proc/self/fd/3`) and
        /// `path` is what that descriptor named (`/memfd:stage2 (deleted)`).
        public var passedAs: String?
        /// For prctl(PR_SET_NAME): the name the process gave itself, what `ps` and `top` show.
        public var renamedTo: String?
        /// What the kernel returned for an exec, clone, fork or vfork: `ok`, or the error's name
        /// (`ENOENT`: a shell's PATH search missing); nil when the call's exit was not seen.
        public var result: String? = nil

        public init(
            syscall: String, path: String?, pid: Int32, arguments: [String]? = nil, argumentsComplete: Bool? = nil,
            renamedTo: String? = nil
        ) {
            self.syscall = syscall
            self.path = path
            self.pid = pid
            self.arguments = arguments
            self.argumentsComplete = argumentsComplete
            self.renamedTo = renamedTo
        }
    }

    public struct WrittenFile: Codable, Sendable, Equatable {
        public var path: String
        /// The exact bytes of `path` when they are not UTF-8.
        public var pathBase64: String?
        public var size: Int64
        public var sha256: String
        public var evidencePath: String
    }

    /// A process of the jail still running at the time limit, named just before it was killed.
    public struct Survivor: Codable, Sendable, Equatable {
        /// Its pid on the host, as in `processes`.
        public var pid: Int32
        /// Its argument vector as a shell would need it typed (cut at 1 KiB): what it said it was.
        public var commandLine: String
        /// It had left the sample's session (`setsid`): a daemon.
        public var ownSession: Bool
        /// Its name as `ps` and `top` show it (the kernel's `comm`), when that is not argv[0]'s
        /// last component: set by prctl(PR_SET_NAME), or the name of a script or of a file run
        /// through a descriptor.
        public var name: String?
    }

    /// What bounded the run as a whole, and what the bounds did.
    public struct Resources: Codable, Sendable, Equatable {
        /// `v2` or `v1` (a cgroup leaf of the run's own), or `none (…why)`: rlimits alone.
        public var cgroup: String
        public var memoryLimitBytes: Int64?
        public var processLimit: Int?
        public var cpuLimit: Double?
        /// Processes the kernel killed for the memory limit.
        public var oomKills: Int? = nil
        /// Forks the process limit refused.
        public var processLimitHits: Int? = nil
        public var peakMemoryBytes: Int64? = nil
    }

    public var id: String
    public var sha256: String
    public var argv: [String]
    /// The uid and gid it ran as (each run has its own, from `SandboxRunner.identities`).
    public var uid: UInt32
    public var exit: Exit
    public var timedOut: Bool
    /// The processes still running at the time limit (empty unless `timedOut`). The sample's own
    /// `exit` is known when it had ended before them: what it left behind was still at work.
    public var stillRunning: [Survivor]
    public var durationMs: Double
    /// Observed syscalls (user notification) by name.
    public var syscalls: [String: Int]
    /// Of those, the calls made through i386's ABI (x86_64 hosts only): a 32-bit x86 program's,
    /// or `int 0x80` from a 64-bit one, a way past a filter written for one ABI.
    public var i386Calls = 0
    /// Refused or killed calls by name, from the kernel's seccomp audit records.
    public var denied: [String: Int]
    public var network: [NetworkAttempt]
    /// Host names looked up (at most 200).
    public var lookups: [NameLookup]
    public var files: [FileAccess]
    public var processes: [Process]
    /// `kill(1, 9)`, and ` -> EPERM` (or ` -> ok`) when the call's exit was seen.
    public var signals: [String]
    public var written: [WrittenFile]
    /// More files were left than `written` keeps (the first 100).
    public var writtenTruncated: Bool
    public var stdout: String
    public var stderr: String
    public var stdoutTruncated: Bool
    public var stderrTruncated: Bool
    /// Set when the jail could not be built (the sample never ran).
    public var setupError: String?
    /// Why what the observed calls came to was not traced (perf or tracefs unavailable), when
    /// it was not: every `result` of a call the kernel answered is then missing.
    public var resultsError: String? = nil
    /// The cgroup ceiling of the run (nil for runs stored before it was recorded).
    public var resources: Resources? = nil
    /// Sentences built only from the fields above.
    public var verdict: [String]
}

extension SandboxReport {
    /// A run as it was stored (`SandboxRunRecord.reportJSON`). Runs stored before a field was
    /// added lack it: each gets the value that meant "none" then.
    public static func decodeStored(_ json: String) throws -> SandboxReport {
        guard var object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "a stored run is not an object"))
        }
        let added: [String: Any] = ["stillRunning": [Any](), "writtenTruncated": false, "i386Calls": 0]
        for (key, value) in added where object[key] == nil { object[key] = value }
        if var exit = object["exit"] as? [String: Any], exit["atTimeLimit"] == nil {
            // Before the flag, a SIGKILL with timedOut was always the time limit's.
            exit["atTimeLimit"] = (object["timedOut"] as? Bool ?? false) && exit["code"] == nil
            object["exit"] = exit
        }
        return try JSONDecoder().decode(SandboxReport.self, from: JSONSerialization.data(withJSONObject: object))
    }

    /// The stored form of this run, linked to the file and alert it was run for.
    public func record(at time: Timestamp, fileID: Int64? = nil, alertID: String? = nil) -> SandboxRunRecord {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return SandboxRunRecord(
            id: id, time: time, sha256: sha256, fileId: fileID, alertId: alertID, verdict: verdict, reportJSON: json)
    }
}

extension SandboxReport.Process {
    /// The `path` of the exec that starts the sample (through its descriptor: it has no path).
    public static let theSample = "(the sample, by descriptor)"

    /// The program and the arguments after argv[0] as a shell would need them typed
    /// (`/usr/bin/curl -fsSL 'http://x/a b'`), ending in ` …` when more were passed than were
    /// read, and naming argv[0] when it is neither the path nor its last component (a dropper
    /// that calls itself `[kworker/0:1]`); nil when no arguments were read.
    public var commandLine: String? {
        guard let arguments, let zeroth = arguments.first, var path else { return nil }
        if path == Self.theSample { path = zeroth }
        let name = path.split(separator: "/").last.map(String.init) ?? path
        var words = [ShellQuote.quote(path)] + arguments.dropFirst().map { ShellQuote.quote($0) }
        if argumentsComplete == false { words.append("…") }
        if zeroth != path && zeroth != name { words.append("(argv[0] \(ShellQuote.quote(zeroth)))") }
        return words.joined(separator: " ")
    }
}
