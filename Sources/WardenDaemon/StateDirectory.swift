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
        path = URL(fileURLWithPath: chosen).standardizedFileURL.path
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
