// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// One response a rule asks for, with its parameters.
public enum PolicyAction: Hashable, Sendable {
    /// Keep an audit row for the match; touches nothing.
    case record
    /// Move each matched file into the quarantine (copy, verify, unlink only the same inode).
    case quarantine
    /// Signal the alert's `proc.pid`, only while it still runs the matched executable.
    case killProcess(signal: KillSignal)
    /// Work out the `noexec` remount for the mount holding the file, and record it.
    case adviseNoexec
    /// Remount the mount holding the file with these flags added (enforce mode only).
    case remountNoexec(flags: Set<MountRestriction>)
    /// Run the sample in the sandbox.
    case sandbox(timeoutSeconds: Int)

    /// The action's name in policy files and audit rows.
    public var name: String { kind.rawValue }

    public var kind: Kind {
        switch self {
        case .record: .record
        case .quarantine: .quarantine
        case .killProcess: .killProcess
        case .adviseNoexec: .adviseNoexec
        case .remountNoexec: .remountNoexec
        case .sandbox: .sandbox
        }
    }

    public enum Kind: String, Hashable, Sendable, CaseIterable {
        case record
        case quarantine
        case killProcess = "kill-process"
        case adviseNoexec = "advise-noexec"
        case remountNoexec = "remount-noexec"
        case sandbox

        /// Whether carrying it out changes anything on the host (files, processes, mounts) or
        /// runs the sample: such actions need a sender that authenticated and kernel facts.
        public var changesTheHost: Bool {
            switch self {
            case .record, .adviseNoexec: false
            case .quarantine, .killProcess, .remountNoexec, .sandbox: true
            }
        }

        /// Whether it acts on the correlated files (kill-process acts on a process the kernel
        /// vouches for instead).
        var needsFile: Bool { self == .quarantine || self == .sandbox || self == .remountNoexec }

        /// The weakest correlation basis it accepts unless the rule says otherwise.
        public var defaultWeakestBasis: CorrelationBasis { changesTheHost ? .kernel : .text }
    }
}

/// The signals `kill-process` may send. `stop` freezes the process so its memory can be examined.
public enum KillSignal: String, Hashable, Sendable, CaseIterable {
    case kill = "KILL"
    case term = "TERM"
    case stop = "STOP"

    /// Accepts `KILL`, `SIGKILL` and the number, in any case.
    public init?(name: String) {
        var text = name.uppercased()
        if text.hasPrefix("SIG") { text.removeFirst(3) }
        switch text {
        case "KILL", "9": self = .kill
        case "TERM", "15": self = .term
        case "STOP", "19": self = .stop
        default: return nil
        }
    }
}

/// Per-mount flags `remount-noexec` can add.
public enum MountRestriction: String, Hashable, Sendable, CaseIterable, Comparable {
    case noexec, nosuid, nodev

    public static func < (lhs: MountRestriction, rhs: MountRestriction) -> Bool { lhs.rawValue < rhs.rawValue }
}
