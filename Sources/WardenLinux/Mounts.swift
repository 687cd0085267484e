// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

// Mounts: per-mount flags (the noexec remount, in the host's mount namespace), tmpfs mounts and
// private mount namespaces for the sandbox.

import CWardenLinux
@preconcurrency import Glibc
import SystemPackage

/// The per-mount flags of mount(2), by their mountinfo names.
public enum MountFlag {
    public static let byOption: [String: UInt] = [
        "ro": UInt(MS_RDONLY), "nosuid": UInt(MS_NOSUID), "nodev": UInt(MS_NODEV), "noexec": UInt(MS_NOEXEC),
        "noatime": UInt(MS_NOATIME), "nodiratime": UInt(MS_NODIRATIME), "relatime": UInt(MS_RELATIME),
        "strictatime": UInt(MS_STRICTATIME), "nosymfollow": UInt(256),
    ]
}

/// Changes only the per-mount flags of the mount at `target` (`MS_REMOUNT|MS_BIND`): the
/// filesystem's own options (size, mode, …) are not touched. `flags` is the complete new set.
/// With `namespace` (an open `/proc/1/ns/mnt`), the mount changed is that namespace's.
public func sys_remountFlags(_ target: [UInt8], flags: UInt, namespace: FileDescriptor? = nil)
    throws(SystemCallError)
{
    try withCPath(target) { (cTarget) throws(SystemCallError) in
        _ = try retryingInterrupts("mount", path: target) {
            warden_remount_in_namespace(namespace?.rawValue ?? -1, cTarget, flags)
        }
    }
}

/// Where this process stands against the host's (pid 1's) mount namespace.
public enum HostMountNamespace {
    /// Ours is the host's.
    case same
    /// Ours is another one (systemd sandboxing, a container sharing the host's pids): an open
    /// `/proc/1/ns/mnt`, which the caller closes.
    case other(FileDescriptor)
    /// pid 1's namespace cannot be read (a container without the host's pids).
    case unknown
}

public func sys_hostMountNamespace() -> HostMountNamespace {
    guard let ours = try? sys_statFollowing(Array("/proc/self/ns/mnt".utf8)),
        let host = try? sys_statFollowing(Array("/proc/1/ns/mnt".utf8))
    else { return .unknown }
    if ours.inode == host.inode && ours.device == host.device { return .same }
    guard let fd = try? sys_open(Array("/proc/1/ns/mnt".utf8), flags: O_RDONLY, followingSymlinks: true) else {
        return .unknown
    }
    return .other(fd)
}

/// Mounts a fresh tmpfs at `path` with `options` (`size=64m,mode=0755`) and `flags` (MS_*).
public func sys_mountTmpfs(_ path: [UInt8], options: String, flags: UInt) throws(SystemCallError) {
    try withCPath(path) { (cPath) throws(SystemCallError) in
        _ = try retryingInterrupts("mount", path: path) { mount("tmpfs", cPath, "tmpfs", flags, options) }
    }
}

/// Moves the calling thread into a mount namespace of its own: what it mounts from then on is
/// invisible to the host and is unmounted by the kernel when the thread and every process it
/// started into the namespace are gone, even if the process is killed
/// (`warden_private_mount_namespace`: unshare, then slave propagation).
public func sys_privateMountNamespace() throws(SystemCallError) {
    _ = try retryingInterrupts("unshare(CLONE_NEWNS)+mount(MS_SLAVE)") { warden_private_mount_namespace() }
}
