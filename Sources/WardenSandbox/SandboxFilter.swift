// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import Synchronization
import SystemPackage
import WardenLinux

/// The sandbox's seccomp filter, built with libseccomp and exported as BPF for the launcher to
/// load between fork and exec (no libseccomp call runs in the child).
///
/// The filter enforces by itself: calls a sample must never make here kill the process or fail
/// with EPERM whatever the supervisor does. Calls worth reporting go to the supervisor as user
/// notifications, which it answers CONTINUE, but for IPv4 and IPv6 sockets and the addresses
/// given to them (`SandboxNetworkAnswer`), and the questions asked of those sockets
/// (`SandboxStandIn`): those it answers itself, without the kernel acting. No answer gives the
/// sample anything the filter refuses: its sockets stay unix ones.
public struct SandboxFilter: Sendable {
    /// Killed with SIGSYS.
    public static let killed = [
        "kexec_load", "kexec_file_load", "init_module", "finit_module",
        "delete_module", "reboot", "swapon", "swapoff", "bpf", "perf_event_open", "userfaultfd", "iopl", "ioperm",
        "acct",
    ]
    /// Refused with EPERM, and the sample goes on, so the report shows what it does next:
    /// `ptrace` (but PTRACE_TRACEME, which a sample makes to see whether it is traced: answered
    /// 0, "not traced", without the kernel acting) and `process_vm_writev`.
    public static let refused = [
        "process_vm_writev",
        // (`umount` is i386's older unmount call, beside its `umount2`.)
        "mount", "umount", "umount2", "pivot_root", "unshare", "setns", "keyctl", "add_key", "request_key", "chroot",
        "open_by_handle_at", "fsopen", "fsmount", "fsconfig", "move_mount", "open_tree", "fspick", "mount_setattr",
        // An io_uring's requests (open, socket of any family, connect, …) run in the kernel
        // without passing this filter: a sample would open files unobserved and make the
        // sockets refused below, AF_VSOCK (not namespaced: the hypervisor's host) included.
        "io_uring_setup", "io_uring_enter", "io_uring_register",
    ]
    /// Reported to the supervisor (and then allowed).
    public static let observed = [
        "execve", "execveat", "open", "openat", "openat2", "creat", "connect", "sendto", "bind", "listen", "clone",
        "fork",
        "vfork",
        "unlink", "unlinkat", "rename", "renameat", "renameat2", "chmod", "fchmod", "fchmodat", "kill", "tkill",
        "tgkill", "memfd_create", "link", "linkat", "symlink", "symlinkat", "mkdir", "mkdirat",
    ]
    /// Reported only for the option that renames the process (PR_SET_NAME, what `ps` shows):
    /// a miner posing as a kernel thread. Other prctl options are frequent and say little.
    public static let observedPrctlOption: UInt64 = 15
    /// Every call that may reach the supervisor: `observed`, prctl for that one option, socket
    /// for IPv4 and IPv6 (`SandboxNetworkAnswer`), and i386's socketcall (`compatibleSocketsPrefix`, and
    /// libseccomp's own rules for the observed calls it multiplexes).
    public static let notified =
        observed + ["prctl", "socket", "socketcall", "sendmsg", "sendmmsg", "recvfrom"] + standInQueries
    /// The calls that ask a socket what it is, or set its options, answered for a stand-in as
    /// the socket it stands for would answer (`SandboxStandIn`): every getsockname and
    /// getpeername, and setsockopt and getsockopt at an IP level (i386's at every level).
    public static let standInQueries = ["getsockname", "getpeername", "setsockopt", "getsockopt"]
    /// The socket families the observer answers with a stand-in, when observing: AF_INET, AF_INET6.
    static let standInFamilies: [UInt64] = [UInt64(AF_INET), UInt64(AF_INET6)]

    /// The action that hands a call to the observer (SECCOMP_RET_USER_NOTIF), as the filter
    /// returns it and as the kernel's audit records give it (`code=0x7fc00000`).
    static let notifyAction: UInt32 = SeccompAction.notify.returnValue

    /// The BPF program: `struct sock_filter` records (8 bytes each).
    public let program: [UInt8]
    public var instructionCount: Int { program.count / 8 }

    /// The 32-bit ABI the filter also covers, on x86_64: i386 programs (a good share of Linux
    /// malware is built for it, statically) run on x86_64 kernels, and a filter of the native
    /// ABI only killed them at their first call, unobserved. Its rules are the native ones,
    /// by name, through libseccomp.
    public static let compatibleArchitecture = SeccompArchitecture.compatible

    /// The filter of each kind, built once per process: libseccomp's build (two ABIs, exported
    /// as BPF) gives the same program every time, and building it per run cost the build and
    /// the memory it left for the jail's clone to copy. A build that failed (its memfd refused
    /// for want of descriptors, say) is not kept: the next run tries again.
    private static let built = Mutex<(observing: SandboxFilter?, enforcing: SandboxFilter?)>((nil, nil))

    /// The filter with the user-notification rules (`observe`) or without, built once.
    public static func shared(observe: Bool) throws -> SandboxFilter {
        try built.withLock { filters in
            if let filter = observe ? filters.observing : filters.enforcing { return filter }
            let filter = try SandboxFilter(observe: observe)
            if observe { filters.observing = filter } else { filters.enforcing = filter }
            return filter
        }
    }

    /// Builds the filter; `observe` adds the user-notification rules.
    public init(observe: Bool) throws {
        let native = try SeccompFilterBuilder()
        try Self.addRules(to: native, observe: observe, standIns: observe)
        // The second ABI's rules are built apart and merged: libseccomp turns i386's socket
        // rules into rules on socketcall(SYS_SOCKET) too, whose family it cannot read, and
        // refuses the stand-in rules there. i386 programs keep having their IPv4 and IPv6
        // sockets refused.
        if let compatible = Self.compatibleArchitecture {
            let second = try SeccompFilterBuilder(architecture: compatible)
            try Self.addRules(to: second, observe: observe, standIns: false)
            try native.merge(second)
        }
        let exported = try native.exportBPF()
        if observe, let compatible = Self.compatibleArchitecture {
            program = Self.compatibleSocketsPrefix(compatible) + exported
        } else {
            program = exported
        }
    }

    /// BPF to run before libseccomp's program, for i386's sockets: its socketcall(SYS_SOCKET),
    /// and its socket(2) for IPv4 or IPv6, go to the observer. libseccomp turns the rule on
    /// socket(2) into one on socketcall too, and cannot have two actions there (nor filter
    /// i386's socket(2) apart from it): every i386 socket was refused but a direct unix one, and
    /// through socketcall, the older way (static builds of the Mirai family's age), unix ones
    /// too. socketcall's family is in memory the filter cannot read: the observer reads the
    /// arguments and makes the socket itself (a unix one, or a stand-in for an IPv4 or IPv6
    /// one), never letting the kernel read them (`SandboxNetworkAnswer.forSocketCall`); socket's
    /// family is a register, checked here. With no observer there, either call fails (ENOSYS).
    /// Every other call, of any ABI, goes on to libseccomp's program.
    static func compatibleSocketsPrefix(_ architecture: SeccompArchitecture) -> [UInt8] {
        func instruction(_ code: UInt16, _ jumpIfTrue: UInt8, _ jumpIfFalse: UInt8, _ value: UInt32) -> [UInt8] {
            withUnsafeBytes(of: code.littleEndian, Array.init) + [jumpIfTrue, jumpIfFalse]
                + withUnsafeBytes(of: value.littleEndian, Array.init)
        }
        let load: UInt16 = 0x20  // BPF_LD | BPF_W | BPF_ABS, from struct seccomp_data
        let jumpIfEqual: UInt16 = 0x15  // BPF_JMP | BPF_JEQ | BPF_K
        let returns: UInt16 = 0x06  // BPF_RET | BPF_K
        let notify = Self.notifyAction
        let socketcall = UInt32(bitPattern: architecture.number(of: "socketcall") ?? -1)
        // i386's socket(2): libseccomp has it as a pseudo-call; its number in the i386 table.
        let socket: UInt32 = 359
        // A jump goes to pc + 1 + its offset; instruction 12 is libseccomp's first.
        return instruction(load, 0, 0, 4)  // 0: arch
            + instruction(jumpIfEqual, 0, 10, architecture.token)  // 1
            + instruction(load, 0, 0, 0)  // 2: nr
            + instruction(jumpIfEqual, 0, 3, socketcall)  // 3
            + instruction(load, 0, 0, 16)  // 4: args[0], its low 32 bits (little-endian)
            + instruction(jumpIfEqual, 0, 6, 1)  // 5: SYS_SOCKET
            + instruction(returns, 0, 0, notify)  // 6
            + instruction(jumpIfEqual, 0, 4, socket)  // 7: nr still loaded
            + instruction(load, 0, 0, 16)  // 8: the family
            + instruction(jumpIfEqual, 1, 0, UInt32(AF_INET))  // 9
            + instruction(jumpIfEqual, 0, 1, UInt32(AF_INET6))  // 10
            + instruction(returns, 0, 0, notify)  // 11
    }

    /// The rules, in `filter`: `observe` adds the user-notification rules, `standIns` the ones
    /// for IPv4 and IPv6 sockets.
    private static func addRules(to filter: SeccompFilterBuilder, observe: Bool, standIns: Bool) throws {
        func add(_ name: String, _ action: SeccompAction, _ comparisons: [SeccompComparison] = []) throws {
            try filter.add(name, action, comparisons)
        }
        let eperm = SeccompAction.fail(errno: EPERM)
        for name in Self.killed { try add(name, .killProcess) }
        for name in Self.refused { try add(name, eperm) }
        try add("ptrace", .fail(errno: 0), [SeccompComparison(argument: 0, .equal, 0)])
        try add("ptrace", eperm, [SeccompComparison(argument: 0, .notEqual, 0)])
        // clone3 hides its flags in memory the filter cannot read: make libc fall back to clone.
        try add("clone3", .fail(errno: ENOSYS))
        for flag in sys_namespaceFlags() {
            try add("clone", eperm, [SeccompComparison(argument: 0, .maskedEqual(mask: flag), flag)])
        }
        // Only the query form of personality(2).
        try add("personality", eperm, [SeccompComparison(argument: 0, .notEqual, 0xffff_ffff)])
        // TIOCSTI would type into the supervisor's terminal.
        try add(
            "ioctl", eperm,
            [SeccompComparison(argument: 1, .maskedEqual(mask: 0xffff_ffff), UInt64(TIOCSTI))])
        // No sockets but AF_UNIX (the net namespace has only its own loopback anyway). With
        // stand-ins, IPv4 and IPv6 ones go to the observer, which answers each with a unix
        // socket standing in, or a refusal (`SandboxNetworkAnswer`); with no observer there, the
        // call fails (ENOSYS). (libseccomp tests the equalities first.)
        try add("socket", eperm, [SeccompComparison(argument: 0, .notEqual, UInt64(AF_UNIX))])
        if standIns {
            for family in Self.standInFamilies {
                try add("socket", .notify, [SeccompComparison(argument: 0, .equal, family)])
            }
            // sendmsg and sendmmsg with an IPv4 or IPv6 address, answered as sendto's (the
            // native ABI only: libseccomp would fold i386's into socketcall, where the flags
            // cannot be read). All but the launcher's one sendmsg of the listener, told by its
            // flags: observing it would wait for the listener it carries. A sample's sendmsg with
            // the same flags goes unobserved, and no further: a stand-in takes no IPv4 address.
            try add(
                "sendmsg", .notify, [SeccompComparison(argument: 2, .notEqual, SandboxSpawn.listenerSendFlags)])
            try add("sendmmsg", .notify)
            for name in Self.standInQueries {
                guard name.hasSuffix("sockopt") else {
                    try add(name, .notify)
                    continue
                }
                // The level is an int: its register's upper half is not the caller's.
                func int(_ argument: UInt32, _ value: Int32) -> SeccompComparison {
                    .int(argument: argument, equals: value)
                }
                for level in SandboxStandIn.levels { try add(name, .notify, [int(1, level)]) }
                if name == "getsockopt" {
                    for option in SandboxStandIn.familyOptions {
                        try add(name, .notify, [int(1, SandboxStandIn.socketLevel), int(2, option)])
                    }
                }
            }
            // recvfrom with an address to fill in: a DNS answer's, from the name server its
            // query went to (musl's resolver checks). The native ABI's only.
            try add("recvfrom", .notify, [SeccompComparison(argument: 4, .notEqual, 0)])
        } else if observe {
            // i386's, which libseccomp also folds into socketcall, whose level is in memory.
            for name in Self.standInQueries { try add(name, .notify) }
        }
        // i386's socketcall(2) passes socket's arguments in memory the filter cannot read: its
        // SYS_SOCKET is refused whatever the family (the direct socket call is filtered above).
        try add("socketcall", eperm, [SeccompComparison(argument: 0, .equal, 1)])
        if observe {
            for name in Self.observed { try add(name, .notify) }
            try add(
                "prctl", .notify,
                [SeccompComparison(argument: 0, .equal, Self.observedPrctlOption)])
        }
    }

    /// The name of syscall `number` of `architecture` (the native ABI by default).
    public static func name(of number: Int32, architecture: SeccompArchitecture = .native) -> String {
        architecture.name(of: number) ?? "syscall-\(number)"
    }
}
