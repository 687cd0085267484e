// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// What a mount looks like, for advice: the facts of one mountinfo line.
public struct MountFacts: Hashable, Sendable {
    public var mountPoint: PathBytes
    /// Per-mount options (`rw,nosuid,nodev,noexec,relatime`).
    public var options: [String]
    /// Filesystem options (`size=65536k,mode=1777`).
    public var superOptions: [String]
    public var fsType: String
    public var source: String

    public init(mountPoint: PathBytes, options: [String], superOptions: [String], fsType: String, source: String) {
        self.mountPoint = mountPoint
        self.options = options
        self.superOptions = superOptions
        self.fsType = fsType
        self.source = source
    }
}

/// The `noexec` advisory for one tmpfs mount: the `advise` entry of DESIGN.md's JSON contract.
public struct NoexecAdvice: Hashable, Sendable, Encodable {
    public var mountPoint: String
    public var mountPointBase64: String?
    public var options: [String]
    public var superOptions: [String]
    public var noexec: Bool
    public var nosuid: Bool
    public var nodev: Bool
    /// Applies `noexec,nosuid,nodev` now, keeping every other option (empty when all are set).
    public var remountCommand: String
    /// The `/etc/fstab` line that makes it persistent (nil for mounts fstab does not own).
    public var fstabLine: String?
    /// How to make it persistent when fstab is not the place.
    public var persistence: String
    public var risks: [String]
    /// Containers and runtimes that own this mount, when it is theirs.
    public var owner: String?
    /// The host's `vm.memfd_noexec` advice, repeated on each entry so `advise --json` stays one
    /// entry per mount (memfd execution is on no mount, and noexec does not stop it).
    public var memfd: MemfdAdvice?

    /// Builds the advice from a mount's facts.
    public init(_ mount: MountFacts) {
        let path = mount.mountPoint
        mountPoint = path.displayString
        mountPointBase64 = path.isValidUTF8 ? nil : path.base64
        options = mount.options
        superOptions = mount.superOptions
        noexec = mount.options.contains("noexec")
        nosuid = mount.options.contains("nosuid")
        nodev = mount.options.contains("nodev")
        let missing = [("noexec", noexec), ("nosuid", nosuid), ("nodev", nodev)].filter { !$0.1 }.map(\.0)
        let quoted = ShellQuote.quote(path)
        remountCommand = missing.isEmpty ? "" : "mount -o remount,\(missing.joined(separator: ",")) \(quoted)"
        let owner = Self.owner(of: path)
        self.owner = owner
        risks = Self.risks
        if let owner {
            fstabLine = nil
            persistence =
                "This mount belongs to \(owner); it is recreated with the runtime's options, so a "
                + "remount lasts only until then. Set the options where the runtime creates it (for Docker, "
                + "shm mounts are noexec,nosuid,nodev by default; for Kubernetes emptyDir medium: Memory, no "
                + "mount option exists: rely on quarantine and kill-process responses)."
        } else {
            // fstab wants spaces, tabs, newlines and backslashes in paths as octal escapes.
            let fstabPath = Self.fstabEscape(path)
            var wanted = mount.options.filter { !["noexec", "nosuid", "nodev", "rw", "ro"].contains($0) }
            wanted.insert(mount.options.contains("ro") ? "ro" : "rw", at: 0)
            wanted += ["nosuid", "nodev", "noexec"]
            let size = mount.superOptions.filter {
                $0.hasPrefix("size=") || $0.hasPrefix("mode=") || $0.hasPrefix("nr_inodes=")
            }
            fstabLine = "tmpfs \(fstabPath) tmpfs \((wanted + size).joined(separator: ",")) 0 0"
            persistence =
                "Add the fstab line (replacing any line for \(mountPoint)) and run "
                + "'systemctl daemon-reload'; systemd then mounts it with these options at boot."
        }
    }

    /// Whether there is a remount to run (some of noexec, nosuid, nodev is missing).
    public var remountIsCommand: Bool { !remountCommand.isEmpty }

    enum CodingKeys: String, CodingKey {
        case mountPoint, mountPointBase64, options, superOptions, noexec, nosuid, nodev, remountCommand, fstabLine
        case persistence, risks, owner, memfd
    }

    /// Who recreates a mount under this path, when it is a container runtime's or logind's.
    static func owner(of path: PathBytes) -> String? {
        let text = path.displayString
        if text.hasPrefix("/var/lib/docker/containers/") { return "a Docker container (its /dev/shm)" }
        if text.hasPrefix("/run/containerd/") || text.hasPrefix("/run/k3s/containerd/") {
            return "a containerd pod sandbox (its /dev/shm)"
        }
        if text.hasPrefix("/var/lib/kubelet/pods/") { return "a Kubernetes pod volume (emptyDir, medium: Memory)" }
        if text.hasPrefix("/run/user/") { return "systemd-logind (a user's runtime directory)" }
        return nil
    }

    static func fstabEscape(_ path: PathBytes) -> String {
        var out = ""
        for byte in path.bytes {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\\"):
                let octal = String(byte, radix: 8)
                out += "\\" + String(repeating: "0", count: 3 - octal.count) + octal
            default:
                out.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        return out
    }

    /// What can break, with where it is documented.
    static let risks = [
        "mmap(2) with PROT_EXEC of a file on a noexec mount fails with EPERM: software that maps POSIX shared "
            + "memory (shm_open, which lives in /dev/shm) as executable stops working.",
        "ROCm: the HSA runtime maps /dev/shm with PROT_EXEC for GPU queues (AqlQueue::Alloc); OpenCL programs "
            + "failed on a noexec /dev/shm (github.com/ROCm/ROCT-Thunk-Interface/issues/8).",
        "dosemu2 fails with 'shared memory map failed' on a noexec /dev/shm (github.com/dosemu2/dosemu2/issues/936).",
        "JIT engines that double-map code through shm_open fail or fall back (e.g. Xenia's code cache: "
            + "github.com/has207/xenia-edge/issues/137); test your workloads in monitor mode first.",
        "noexec does not stop 'sh /dev/shm/x' (a read by an interpreter), nor fileless execution from a memfd "
            + "(vm.memfd_noexec is the control for that).",
    ]
}

/// `vm.memfd_noexec` advice: memfd execution is not on any mount, so noexec cannot stop it.
public struct MemfdAdvice: Hashable, Sendable, Encodable {
    /// The current value, when the kernel has the sysctl (Linux 6.3 and later).
    public var current: Int?
    public var recommended: Int
    public var command: String
    public var persistentFile: String
    public var explanation: String

    public init(current: Int?) {
        self.current = current
        recommended = 2
        command = "sysctl -w vm.memfd_noexec=2"
        persistentFile = "/etc/sysctl.d/60-memfd-noexec.conf containing: vm.memfd_noexec = 2"
        explanation =
            (current.map { "vm.memfd_noexec is \($0) now. " }
                ?? "This kernel has no vm.memfd_noexec (it arrived in Linux 6.3): memfd execution cannot be "
                + "restricted by sysctl here. ")
            + "0: memfd_create without flags makes executable memfds; 1: it makes non-executable ones unless "
            + "MFD_EXEC is asked for; 2: MFD_EXEC is refused, so no memfd can be executed. It applies per pid "
            + "namespace and can only be raised. Software that executes code from a memfd on purpose (some JITs, "
            + "programs that re-execute themselves from a memfd) breaks at 2: try 1 first and watch for errors."
    }
}
