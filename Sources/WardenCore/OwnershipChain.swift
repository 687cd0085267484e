// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// Whether a path's owners vouch for it: the rule that lets a path glob allowlist a file.
///
/// A glob trusts a name, and on a world-writable tmpfs anyone can create any name. So a glob
/// counts only when nobody but root (or a trusted uid) could have put the file there or swapped
/// it: the file and every directory from its mount's root down to it must be owned by a trusted
/// uid and writable by nobody else. A directory that others may write counts only with the
/// sticky bit and a trusted owner (`/dev/shm` itself, 1777 root): there others may add names but
/// not rename or remove a trusted owner's entries.
public enum OwnershipChain {
    /// The owner and mode of one link in the chain.
    public struct Link: Hashable, Sendable {
        public var uid: UInt32
        /// The full `st_mode`.
        public var mode: UInt32

        public init(uid: UInt32, mode: UInt32) {
            self.uid = uid
            self.mode = mode
        }
    }

    /// Why the chain is not trusted, or nil when it is.
    ///
    /// - Parameters:
    ///   - file: the file itself.
    ///   - directories: from the mount's root down to the file's directory; empty when the walk
    ///     could not reach the mount's root (then nothing is trusted).
    ///   - trustedOwners: uids besides root's whose files a glob may vouch for.
    public static func distrust(file: Link, directories: [Link], trustedOwners: Set<UInt32>) -> String? {
        func trusted(_ uid: UInt32) -> Bool { uid == 0 || trustedOwners.contains(uid) }
        guard !directories.isEmpty else { return "the directories above it could not be checked" }
        guard trusted(file.uid) else { return "the file is owned by uid \(file.uid)" }
        guard file.mode & 0o022 == 0 else { return "the file is writable by group or others" }
        for (depth, directory) in directories.enumerated() {
            let name = depth == 0 ? "the mount's root" : "a directory \(depth) below the mount's root"
            guard trusted(directory.uid) else { return "\(name) is owned by uid \(directory.uid)" }
            let othersMayWrite = directory.mode & 0o022 != 0
            let sticky = directory.mode & 0o1000 != 0
            guard !othersMayWrite || sticky else { return "\(name) is writable by group or others" }
        }
        return nil
    }
}
