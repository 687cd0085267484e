// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Yams

/// `/etc/shmwarden/shmwarden.yaml`: every setting a flag of `shmwarden run` sets. Flags win over
/// the file; the file wins over the built-in defaults. Unknown keys and bad values are errors
/// with their line.
public struct ConfigFile: Hashable, Sendable {
    public var stateDirectory: String?
    public var watch: [String]?
    public var discover: Bool?
    public var hashSizeCap: String?
    public var maxPinnedFiles: Int?
    /// `HOST:PORT`, or `off` for no TCP listener.
    public var listen: String?
    public var unixSocket: String?
    public var tokenFile: String?
    public var bodyLimit: String?
    public var policy: String?
    public var logLevel: String?
    /// `journal` or `text`; unset: journal when started by systemd, text otherwise.
    public var logFormat: String?
    public var retention: RetentionSettings?
    /// `intake:`, how the intake authenticates its senders.
    public var intake = IntakeSettings()
    /// `storage:`, the state directory's disk budget.
    public var storage: StorageBudget?
    /// `inotify-watch-share:`, the share of fs.inotify.max_user_watches the sensor may take.
    public var inotifyWatchShare: Double?
    /// `exec-monitor:`, whether every exec is watched for fileless payloads, and which
    /// interpreters' scripts are taken.
    public var execMonitor = ExecMonitorSettings()
    /// `outputs:`, where every detection and action is sent (none: the outbox stays empty).
    public var outputs: [FleetOutput] = []
    /// `outbox:`, how many events wait for the outputs at most.
    public var outbox = OutboxSettings()
    /// `yara:`, the rules captures are scanned with (none: no scanning).
    public var yara = YaraSettings()

    public init() {}

    /// The default location.
    public static let defaultPath = "/etc/shmwarden/shmwarden.yaml"

    static let keys = [
        "state-dir", "watch", "discover", "hash-size-cap", "max-pinned-files", "listen", "unix-socket", "token-file",
        "body-limit", "policy", "log-level", "log-format", "retention", "intake", "storage", "inotify-watch-share",
        "exec-monitor", "outputs", "outbox", "yara",
    ]
    static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    /// Parses the file's text; `file` names it in errors.
    public static func parse(_ text: String, file: String) -> Result<ConfigFile, PolicyErrors> {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            return .failure(PolicyErrors([PolicyParser.yamlError(error, file: file)]))
        } catch {
            return .failure(PolicyErrors([PolicyError(file: file, line: 0, reason: "\(error)")]))
        }
        var config = ConfigFile()
        guard let root else { return .success(config) }  // an empty file sets nothing
        var errors: [PolicyError] = []
        func fail(_ node: Node, _ reason: String) {
            errors.append(
                PolicyError(file: file, line: node.mark?.line ?? 0, column: node.mark?.column ?? 0, reason: reason))
        }
        func scalarText(_ node: Node, _ key: String) -> String? {
            guard case .scalar(let scalar) = node, node.null == nil, !scalar.string.isEmpty else {
                fail(node, "\(key) must be a single value")
                return nil
            }
            return scalar.string
        }
        func size(_ node: Node, _ key: String) -> String? {
            guard let value = scalarText(node, key) else { return nil }
            guard ByteSizeText.parse(value) != nil else {
                fail(node, "\(key) '\(value)' is not a size (e.g. 4096, 512K, 256M, 1G)")
                return nil
            }
            return value
        }
        func absolute(_ node: Node, _ key: String) -> String? {
            guard let value = scalarText(node, key) else { return nil }
            guard value.hasPrefix("/") else {
                fail(node, "\(key) must be an absolute path, not '\(value)'")
                return nil
            }
            return value
        }
        guard case .mapping(let mapping) = root else {
            return .failure(
                PolicyErrors([
                    PolicyError(
                        file: file, line: 1, column: 1, reason: "the configuration must be a mapping (key: value lines)"
                    )
                ]))
        }
        for (keyNode, value) in mapping {
            guard let key = keyNode.string, keys.contains(key) else {
                fail(
                    keyNode, "unknown key '\(keyNode.string ?? "?")' (expected one of: \(keys.joined(separator: ", ")))"
                )
                continue
            }
            switch key {
            case "state-dir": config.stateDirectory = absolute(value, key)
            case "watch":
                let items = value.sequence.map(Array.init) ?? [value]
                config.watch = items.compactMap { absolute($0, "each watch path") }
            case "discover":
                guard let flag = value.bool, value.scalar != nil else {
                    fail(value, "discover must be true or false")
                    continue
                }
                config.discover = flag
            case "hash-size-cap": config.hashSizeCap = size(value, key)
            case "body-limit": config.bodyLimit = size(value, key)
            case "max-pinned-files":
                guard let count = value.int, count > 0 else {
                    fail(value, "max-pinned-files must be a whole number of at least 1")
                    continue
                }
                config.maxPinnedFiles = count
            case "listen":
                guard let listen = scalarText(value, key) else { continue }
                guard listen == "off" || HostPortText.isValid(listen) else {
                    fail(value, "listen must be HOST:PORT (e.g. 127.0.0.1:2804) or off, not '\(listen)'")
                    continue
                }
                config.listen = listen
            case "unix-socket": config.unixSocket = absolute(value, key)
            case "token-file": config.tokenFile = absolute(value, key)
            case "policy": config.policy = absolute(value, key)
            case "log-level":
                guard let level = scalarText(value, key) else { continue }
                guard logLevels.contains(level) else {
                    fail(value, "log-level must be one of \(logLevels.joined(separator: ", ")), not '\(level)'")
                    continue
                }
                config.logLevel = level
            case "log-format":
                guard let format = scalarText(value, key) else { continue }
                guard format == "journal" || format == "text" else {
                    fail(value, "log-format must be journal or text, not '\(format)'")
                    continue
                }
                config.logFormat = format
            case "intake":
                config.intake = IntakeSettings.parse(value, fail: fail, absolute: absolute)
            case "storage":
                config.storage = StorageBudget.parse(value, fail: fail)
            case "exec-monitor":
                config.execMonitor = ExecMonitorSettings.parse(value, fail: fail)
            case "outputs":
                config.outputs = FleetOutput.parseList(value, fail: fail, absolute: absolute)
            case "outbox":
                config.outbox = OutboxSettings.parse(value, fail: fail)
            case "yara":
                config.yara = YaraSettings.parse(value, fail: fail)
            case "inotify-watch-share":
                guard let text = value.string, let share = StorageBudget.parseShare(text), share > 0 else {
                    fail(value, "inotify-watch-share must be a share like 50% or 0.5")
                    continue
                }
                config.inotifyWatchShare = share
            default:
                config.retention = RetentionSettings.parse(value, fail: fail)
            }
        }
        return errors.isEmpty ? .success(config) : .failure(PolicyErrors(errors))
    }
}

/// How the intake authenticates senders (`intake:` in the configuration file).
public struct IntakeSettings: Hashable, Sendable {
    /// Plain HTTP on the TCP listener, without authentication: said explicitly or never.
    public var insecure: Bool?
    /// The server's certificate, its key, and the CA of the client certificates it accepts
    /// (default: `/etc/shmwarden/tls/server.crt`, `server.key`, `ca.crt`).
    public var certificate: String?
    public var key: String?
    public var clientCA: String?
    /// `required` (default) or `optional` (then a client without one must send the token).
    public var clientCertificates: String?
    /// Who may post on the unix socket besides root.
    public var peerUIDs: [UInt32] = []
    public var peerGIDs: [UInt32] = []

    public init() {}

    static let keys = ["insecure", "certificate", "key", "client-ca", "client-certificates", "peer-uids", "peer-gids"]

    static func parse(_ node: Node, fail: (Node, String) -> Void, absolute: (Node, String) -> String?) -> IntakeSettings
    {
        var settings = IntakeSettings()
        guard case .mapping(let mapping) = node else {
            fail(
                node,
                "intake must be a mapping (insecure, certificate, key, client-ca, client-certificates, peer-uids, peer-gids)"
            )
            return settings
        }
        func ids(_ value: Node, _ key: String) -> [UInt32] {
            (value.sequence.map(Array.init) ?? [value]).compactMap { item in
                guard case .scalar = item, let number = item.int, let id = UInt32(exactly: number) else {
                    fail(item, "\(key) lists numeric ids (0 to 4294967295)")
                    return nil
                }
                return id
            }
        }
        for (keyNode, value) in mapping {
            switch keyNode.string {
            case "insecure":
                guard let flag = value.bool, value.scalar != nil else {
                    fail(value, "intake.insecure must be true or false")
                    continue
                }
                settings.insecure = flag
            case "certificate": settings.certificate = absolute(value, "intake.certificate")
            case "key": settings.key = absolute(value, "intake.key")
            case "client-ca": settings.clientCA = absolute(value, "intake.client-ca")
            case "client-certificates":
                guard let text = value.string, text == "required" || text == "optional" else {
                    fail(value, "intake.client-certificates must be required or optional")
                    continue
                }
                settings.clientCertificates = text
            case "peer-uids": settings.peerUIDs = ids(value, "intake.peer-uids")
            case "peer-gids": settings.peerGIDs = ids(value, "intake.peer-gids")
            default:
                fail(
                    keyNode,
                    "unknown key '\(keyNode.string ?? "?")' in intake (expected one of: \(keys.joined(separator: ", ")))"
                )
            }
        }
        if settings.insecure == true && (settings.certificate != nil || settings.key != nil || settings.clientCA != nil)
        {
            fail(node, "intake.insecure: true excludes certificate, key and client-ca")
        }
        return settings
    }
}

extension StorageBudget {
    /// `storage: {budget: 20G, keep-free: 10%, quarantine-budget: 4G}`.
    static func parse(_ node: Node, fail: (Node, String) -> Void) -> StorageBudget? {
        guard case .mapping(let mapping) = node else {
            fail(node, "storage must be a mapping (budget, keep-free, quarantine-budget)")
            return nil
        }
        var budget = StorageBudget()
        for (keyNode, value) in mapping {
            let text = value.string ?? ""
            switch keyNode.string {
            case "budget":
                guard let bytes = ByteSizeText.parse(text), bytes > 0 else {
                    fail(value, "storage.budget '\(text)' is not a size like 20G")
                    continue
                }
                budget.stateBytes = bytes
            case "quarantine-budget":
                guard let bytes = ByteSizeText.parse(text), bytes > 0 else {
                    fail(value, "storage.quarantine-budget '\(text)' is not a size like 4G")
                    continue
                }
                budget.quarantineBytes = bytes
            case "keep-free":
                guard let share = parseShare(text), share < 0.9 else {
                    fail(value, "storage.keep-free '\(text)' is not a share like 10% (below 90%)")
                    continue
                }
                budget.keepFreeShare = share
            default:
                fail(
                    keyNode,
                    "unknown key '\(keyNode.string ?? "?")' in storage (expected budget, keep-free, quarantine-budget)")
            }
        }
        return budget
    }

    /// `10%` or `0.1`: a share from 0 to 1.
    public static func parseShare(_ text: String) -> Double? {
        let value = text.hasSuffix("%") ? Double(text.dropLast()).map { $0 / 100 } : Double(text)
        guard let value, value.isFinite, value >= 0, value <= 1 else { return nil }
        return value
    }
}

/// How long evidence and rows are kept, and how much evidence may take.
public struct RetentionSettings: Hashable, Sendable {
    /// Seconds; rows and evidence older than this are pruned (nil: kept forever).
    public var maxAgeSeconds: Int64?
    /// Bytes the evidence directory may take; the oldest unreferenced copies go first.
    public var evidenceBudgetBytes: Int64?

    public init(maxAgeSeconds: Int64? = nil, evidenceBudgetBytes: Int64? = nil) {
        self.maxAgeSeconds = maxAgeSeconds
        self.evidenceBudgetBytes = evidenceBudgetBytes
    }

    /// `30d`, `12h`, `90m`, `3600s` or seconds.
    public static func parseAge(_ text: String) -> Int64? {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]
        var body = Substring(text)
        var unit: Int64 = 1
        if let last = body.last, let factor = units[last] {
            unit = factor
            body = body.dropLast()
        }
        guard let value = Int64(body), value > 0 else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: unit)
        return overflow ? nil : product
    }

    static func parse(_ node: Node, fail: (Node, String) -> Void) -> RetentionSettings? {
        guard case .mapping(let mapping) = node else {
            fail(node, "retention must be a mapping with max-age and/or evidence-budget")
            return nil
        }
        var settings = RetentionSettings()
        for (keyNode, value) in mapping {
            let text = value.string ?? ""
            switch keyNode.string {
            case "max-age":
                guard let age = parseAge(text) else {
                    fail(value, "max-age '\(text)' is not an age like 30d, 12h or 3600s")
                    continue
                }
                settings.maxAgeSeconds = age
            case "evidence-budget":
                guard let bytes = ByteSizeText.parse(text), bytes > 0 else {
                    fail(value, "evidence-budget '\(text)' is not a size like 10G")
                    continue
                }
                settings.evidenceBudgetBytes = bytes
            default:
                fail(keyNode, "unknown key '\(keyNode.string ?? "?")' in retention (expected max-age, evidence-budget)")
            }
        }
        return settings
    }
}

/// Sizes such as `4096`, `512K`, `256M`, `1G` (powers of 1024).
public enum ByteSizeText {
    public static func parse(_ text: String) -> Int64? {
        let upper = text.uppercased()
        let multipliers: [Character: Int64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        if let last = upper.last, let multiplier = multipliers[last] {
            guard let value = Int64(upper.dropLast()), value >= 0 else { return nil }
            let (product, overflow) = value.multipliedReportingOverflow(by: multiplier)
            return overflow ? nil : product
        }
        guard let value = Int64(upper), value >= 0 else { return nil }
        return value
    }
}

/// `HOST:PORT`, with `[v6]:PORT` for IPv6 literals.
public enum HostPortText {
    public static func parse(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        return (host, port)
    }

    public static func isValid(_ text: String) -> Bool { parse(text) != nil }
}

/// The exec monitor (`exec-monitor:` in the configuration file): `false`, `true`, or a mapping
/// of `enabled` and `interpreters`.
public struct ExecMonitorSettings: Hashable, Sendable {
    public var enabled: Bool?
    /// Program names whose script argument and open files are captured (a versioned name such as
    /// `python3.11` counts as its family).
    public var interpreters: [String]?

    public init() {}

    static let keys = ["enabled", "interpreters"]

    static func parse(_ node: Node, fail: (Node, String) -> Void) -> ExecMonitorSettings {
        var settings = ExecMonitorSettings()
        if case .scalar = node {
            guard let flag = node.bool else {
                fail(node, "exec-monitor must be true, false, or a mapping (enabled, interpreters)")
                return settings
            }
            settings.enabled = flag
            return settings
        }
        guard case .mapping(let mapping) = node else {
            fail(node, "exec-monitor must be true, false, or a mapping (enabled, interpreters)")
            return settings
        }
        for (keyNode, value) in mapping {
            switch keyNode.string {
            case "enabled":
                guard let flag = value.bool, value.scalar != nil else {
                    fail(value, "exec-monitor.enabled must be true or false")
                    continue
                }
                settings.enabled = flag
            case "interpreters":
                var names: [String] = []
                for item in value.sequence.map(Array.init) ?? [value] {
                    guard case .scalar = item, let name = item.string, !name.isEmpty, !name.contains("/") else {
                        fail(item, "exec-monitor.interpreters lists program names such as python3 (no paths)")
                        continue
                    }
                    names.append(name)
                }
                settings.interpreters = names
            default:
                fail(
                    keyNode,
                    "unknown key '\(keyNode.string ?? "?")' in exec-monitor (expected one of: \(keys.joined(separator: ", ")))"
                )
            }
        }
        return settings
    }
}
