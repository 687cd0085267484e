// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// What a path a sample tried to open says about its intent, by where the path points: the
/// places an analyst looks for first in a dropper's file accesses. The jail holds none of these
/// files (its /etc has only passwd, group, hosts and nsswitch.conf), so a match is an attempt,
/// never an access. Only absolute paths are classified (a relative one depends on a directory
/// the report does not know; `mayBeNamedBy(relativePath:)` says which are worth resolving).
public enum SensitivePath: String, Sendable, CaseIterable {
    /// Password hashes, private keys, cloud and cluster credentials, service-account tokens.
    case credentials
    /// Where a program makes itself start again: cron, systemd units, init scripts, shell
    /// start-up files, the dynamic loader's preload list, authorized SSH keys, sudoers. Shells
    /// and the loader read some of these on their own, so only a write says anything.
    case persistence
    /// Sockets of container runtimes: whoever reaches one controls the host's containers.
    case containerRuntime

    /// Whether a path relative to a directory descriptor may name a file of these categories,
    /// from its own components alone: one named like a credential, key, token or start-up file,
    /// or a directory that holds them. The sandbox observer makes such a path absolute (a
    /// readlink of the descriptor, while the call waits) only when this says so or the call
    /// writes: `find` opens almost every file relative to a descriptor, and a readlink for each
    /// would cost more than the rest of its notification. Cheap and generous: a false positive
    /// costs one readlink, a miss leaves a path as passed.
    public static func mayBeNamedBy(relativePath path: [UInt8]) -> Bool {
        // Runs on every notified call a walk makes: no allocation, names compared only with
        // those of the same length.
        path.withUnsafeBufferPointer { bytes in
            var start = 0
            while start < bytes.count {
                var end = start
                while end < bytes.count && bytes[end] != UInt8(ascii: "/") { end += 1 }
                if end > start && isSensitive(UnsafeBufferPointer(rebasing: bytes[start..<end])) { return true }
                start = end + 1
            }
            return false
        }
    }

    private static func isSensitive(_ component: UnsafeBufferPointer<UInt8>) -> Bool {
        if component.count < sensitiveNamesByLength.count,
            sensitiveNamesByLength[component.count].contains(where: { $0.elementsEqual(component) })
        {
            return true
        }
        for prefix in sensitivePrefixes where component.count >= prefix.count {
            if component.prefix(prefix.count).elementsEqual(prefix) { return true }
        }
        for suffix in sensitiveSuffixes where component.count > suffix.count {
            if component.suffix(suffix.count).elementsEqual(suffix) { return true }
        }
        return false
    }

    /// Names that are, or hold, what `classify` looks for.
    static let sensitiveComponents: [String] = [
        "shadow", "gshadow", "shadow-", "gshadow-", "opasswd", "sudoers", "sudoers.d", "ld.so.preload", "crontab",
        "cron.d", "cron.hourly", "cron.daily", "cron.weekly", "cron.monthly", "cron", "rc.local", "profile",
        "profile.d", "bash.bashrc", "environment", "init.d", "update-motd.d", "systemd", "autostart", ".ssh",
        ".aws", ".kube", ".docker", ".gnupg", ".azure", "gcloud", ".netrc", ".git-credentials", ".pgpass",
        ".bash_history", ".bashrc", ".bash_profile", ".profile", ".bash_login", ".bash_logout", ".zshrc",
        ".zprofile", "secrets", "serviceaccount", "kubernetes", "kubernetes.io", "pki", "token", "credentials",
        "admin.conf", "kubelet.conf", "controller-manager.conf", "scheduler.conf", "docker.sock",
        "containerd.sock", "crio.sock", "podman.sock", "cri-dockerd.sock", "config", "config.json",
        "known_hosts", "manifests", "kubelet",
    ]
    /// `sensitiveComponents` as bytes, by length.
    static let sensitiveNamesByLength: [[[UInt8]]] = {
        let names = sensitiveComponents.map { Array($0.utf8) }
        var byLength = [[[UInt8]]](repeating: [], count: (names.map(\.count).max() ?? 0) + 1)
        for name in names { byLength[name.count].append(name) }
        return byLength
    }()
    static let sensitivePrefixes: [[UInt8]] = ["authorized_keys", "id_", "ssh_host_"].map { Array($0.utf8) }
    /// Private keys by their usual suffixes (not `.crt`: certificates are public, and
    /// /usr/share/ca-certificates holds hundreds).
    static let sensitiveSuffixes: [[UInt8]] = [".key", ".pem"].map { Array($0.utf8) }

    /// The category of `path`, or nil for an ordinary one.
    public static func classify(_ path: String) -> SensitivePath? {
        let components = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard !components.isEmpty else { return nil }
        let name = components[components.count - 1]
        func under(_ prefix: String) -> Bool { path == prefix || path.hasPrefix(prefix + "/") }
        // In a home directory (/root or /home/<user>): the part after it.
        let inHome: [String]? =
            components.first == "root"
            ? Array(components.dropFirst())
            : components.first == "home" && components.count > 2
                ? Array(components.dropFirst(2)) : nil

        if ["/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/security/opasswd"].contains(path)
            || under("/var/run/secrets") || under("/run/secrets") || under("/etc/kubernetes")
            || under("/var/lib/kubelet/pki")
            || (under("/etc/ssh") && name.hasPrefix("ssh_host_") && name.hasSuffix("_key"))
        {
            return .credentials
        }
        if let inHome, let first = inHome.first {
            if first == ".ssh" && inHome.count > 1 {
                return inHome[1].hasPrefix("authorized_keys") ? .persistence : .credentials
            }
            if [".aws", ".kube", ".docker", ".gnupg", ".azure", ".config/gcloud"].contains(where: { prefix in
                inHome.joined(separator: "/").hasPrefix(prefix + "/")
            }) || [".netrc", ".git-credentials", ".pgpass", ".bash_history"].contains(first) {
                return .credentials
            }
            if [".bashrc", ".bash_profile", ".profile", ".bash_login", ".bash_logout", ".zshrc", ".zprofile"]
                .contains(first) && inHome.count == 1
                || inHome.joined(separator: "/").hasPrefix(".config/autostart/")
                || inHome.joined(separator: "/").hasPrefix(".config/systemd/user/")
            {
                return .persistence
            }
        }
        if [
            "/etc/ld.so.preload", "/etc/crontab", "/etc/rc.local", "/etc/profile", "/etc/bash.bashrc",
            "/etc/environment",
        ].contains(path)
            || [
                "/etc/cron.d", "/etc/cron.hourly", "/etc/cron.daily", "/etc/cron.weekly", "/etc/cron.monthly",
                "/var/spool/cron", "/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system",
                "/etc/init.d", "/etc/profile.d", "/etc/update-motd.d", "/etc/sudoers.d",
            ].contains(where: under)
            || path == "/etc/sudoers"
        {
            return .persistence
        }
        if ["docker.sock", "containerd.sock", "crio.sock", "podman.sock", "cri-dockerd.sock"].contains(name)
            && (under("/var/run") || under("/run"))
        {
            return .containerRuntime
        }
        return nil
    }
}
