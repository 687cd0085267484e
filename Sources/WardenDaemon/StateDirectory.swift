// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import WardenCore
import WardenLinux

/// The agent's state directory: `shmwarden.sqlite`, `evidence/` and `quarantine/`, mode 0700.
public struct StateDirectory: Sendable {
    /// `/var/lib/shmwarden` unless `SHMWARDEN_STATE_DIR` or `--state-dir` says otherwise.
    public static let defaultPath = "/var/lib/shmwarden"

    public let path: String

    /// Resolves the directory: the flag wins, then the environment, then the default.
    public init(flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment) {
        let chosen = flag ?? environment["SHMWARDEN_STATE_DIR"] ?? Self.defaultPath
        path = Self.standardized(chosen)
    }

    /// Absolute against the working directory, with `.`, `..` and repeated slashes taken out
    /// lexically, as `URL.standardizedFileURL` does (whose first use cost each command's start
    /// 0.2 ms of runtime type lookups).
    static func standardized(_ path: String) -> String {
        var absolute = path
        if !path.hasPrefix("/"), let directory = getcwd(nil, 0) {
            absolute = String(cString: directory) + "/" + path
            free(directory)
        }
        var components: [Substring] = []
        for component in absolute.split(separator: "/") where component != "." {
            if component == ".." {
                _ = components.popLast()
            } else {
                components.append(component)
            }
        }
        // By hand, String to String: every command starts here, and the generic
        // `joined(separator:)` on substrings looks a protocol conformance up at its first use.
        var standardized = ""
        for component in components {
            standardized += "/"
            standardized += String(component)
        }
        return standardized.isEmpty ? "/" : standardized
    }

    public var databasePath: String { path + "/shmwarden.sqlite" }
    public var evidencePath: String { path + "/evidence" }
    public var quarantinePath: String { path + "/quarantine" }
    public var sandboxPath: String { path + "/sandbox" }
    /// Holds the running agent's pid (for `guard allow` to signal a reload).
    public var pidFilePath: String { path + "/shmwarden.pid" }

    /// Creates the directory (and parents) if needed and sets it to 0700.
    public func prepare() throws {
        // Usually there already (a stat), and FileManager's creation with attributes costs a
        // command's start more than the rest of this.
        if (try? sys_statFollowing(Array(path.utf8)))?.isDirectory != true {
            try FileManager.default.createDirectory(
                atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        try sys_chmod(Array(path.utf8), 0o700)
    }

    /// `true` when the database exists (read-only commands refuse to create one).
    public var hasDatabase: Bool { FileManager.default.fileExists(atPath: databasePath) }
}
