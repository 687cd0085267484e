// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import WardenCore
import WardenLinux

extension OwnershipChain {
    /// Why the owners of `path` (whose status is `status`) and of the directories above it, up
    /// to its mount's root, do not vouch for it; nil when they do.
    public static func distrust(path: PathBytes, status: FileStatus, trustedOwners: Set<UInt32>) -> String? {
        let directories = DirectoryChain.statuses(above: path.bytes, device: status.device) ?? []
        return distrust(
            file: Link(uid: status.uid, mode: status.mode),
            directories: directories.map { Link(uid: $0.uid, mode: $0.mode) }, trustedOwners: trustedOwners)
    }
}
