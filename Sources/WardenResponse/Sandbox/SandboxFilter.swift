// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import CSeccomp
@preconcurrency import Glibc
import Synchronization
import SystemPackage
import WardenLinux

/// The sandbox's seccomp filter, built with libseccomp and exported as BPF for the launcher to
/// load between fork and exec (no libseccomp call runs in the child).
///
/// The filter enforces by itself: calls a sample must never make here kill the process or fail
/// with EPERM whatever the supervisor does. Calls worth reporting go to the supervisor as user
/// notifications, which it always answers CONTINUE.
public struct SandboxFilter: Sendable {
    /// Killed with SIGSYS.
    public static let killed = [
        "ptrace", "process_vm_writev", "kexec_load", "kexec_file_load", "init_module", "finit_module",
        "delete_module", "reboot", "swapon", "swapoff", "bpf", "perf_event_open", "userfaultfd", "iopl", "ioperm",
        "acct",
    ]
    /// Refused with EPERM.
    public static let refused = [
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
        "execve", "execveat", "open", "openat", "openat2", "creat", "connect", "sendto", "clone", "fork", "vfork",
        "unlink", "unlinkat", "rename", "renameat", "renameat2", "chmod", "fchmod", "fchmodat", "kill", "tkill",
        "tgkill", "memfd_create", "link", "linkat", "symlink", "symlinkat",
    ]
    /// Reported only for the option that renames the process (PR_SET_NAME, what `ps` shows):
    /// a miner posing as a kernel thread. Other prctl options are frequent and say little.
    public static let observedPrctlOption: UInt64 = 15
    /// Every call that may reach the supervisor: `observed`, and prctl for that one option.
    public static let notified = observed + ["prctl"]

    /// The BPF program: `struct sock_filter` records (8 bytes each).
    public let program: [UInt8]
    public var instructionCount: Int { program.count / 8 }

    public struct BuildError: Error, CustomStringConvertible {
        public var description: String
    }

    /// The 32-bit ABI the filter also covers, on x86_64: i386 programs (a good share of Linux
    /// malware is built for it, statically) run on x86_64 kernels, and a filter of the native
    /// ABI only killed them at their first call, unobserved. Its rules are the native ones,
    /// by name, through libseccomp.
    public static let compatibleArchitecture: UInt32? =
        seccomp_arch_native() == cseccomp_arch_x86_64() ? cseccomp_arch_x86() : nil

    /// The filter of each kind, built once per process: libseccomp's build (two ABIs, exported
    /// as BPF) cost every run 0.6-0.9 ms (medians of 160 runs in one process, interleaved: the
    /// build itself, and the memory it left for the jail's clone to copy), and gives the same
    /// program every time.
    /// A build that failed (its memfd refused for want of descriptors, say) is not kept: the
    /// next run tries again.
    private static let built = Mutex<[Bool: SandboxFilter]>([:])

    /// The filter with the user-notification rules (`observe`) or without, built once.
    public static func shared(observe: Bool) throws -> SandboxFilter {
        try built.withLock { filters in
            if let filter = filters[observe] { return filter }
            let filter = try SandboxFilter(observe: observe)
            filters[observe] = filter
            return filter
        }
    }

    /// Builds the filter; `observe` adds the user-notification rules.
    public init(observe: Bool) throws {
        guard let context = seccomp_init(SCMP_ACT_ALLOW) else { throw BuildError(description: "seccomp_init failed") }
        defer { seccomp_release(context) }
        // Another architecture's syscall numbers (x32 on x86_64, or any but the two covered) must
        // not slip past the rules.
        guard seccomp_attr_set(context, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) == 0 else {
            throw BuildError(description: "seccomp_attr_set(ACT_BADARCH) failed")
        }
        if let compatible = Self.compatibleArchitecture {
            let added = seccomp_arch_add(context, compatible)
            guard added == 0 || added == -EEXIST else { throw BuildError(description: "seccomp_arch_add: \(added)") }
        }
        // A binary search over the syscall numbers rather than a linear walk: every call the
        // sample makes passes the filter, notified or not. (libseccomp 2.5+; older ones keep the
        // linear filter, which enforces the same.)
        _ = seccomp_attr_set(context, SCMP_FLTATR_CTL_OPTIMIZE, 2)
        func add(_ name: String, _ action: UInt32, _ comparisons: [scmp_arg_cmp] = []) throws {
            let number = seccomp_syscall_resolve_name(name)
            guard number != __NR_SCMP_ERROR else { return }  // not on this architecture
            let result = comparisons.withUnsafeBufferPointer {
                seccomp_rule_add_array(context, action, number, UInt32($0.count), $0.baseAddress)
            }
            guard result == 0 else { throw BuildError(description: "seccomp rule for \(name): \(result)") }
        }
        let eperm = cseccomp_act_errno(UInt16(EPERM))
        for name in Self.killed { try add(name, SCMP_ACT_KILL_PROCESS) }
        for name in Self.refused { try add(name, eperm) }
        // clone3 hides its flags in memory the filter cannot read: make libc fall back to clone.
        try add("clone3", cseccomp_act_errno(UInt16(ENOSYS)))
        for flag in sys_namespaceFlags() {
            try add("clone", eperm, [scmp_arg_cmp(arg: 0, op: SCMP_CMP_MASKED_EQ, datum_a: flag, datum_b: flag)])
        }
        // Only the query form of personality(2).
        try add("personality", eperm, [scmp_arg_cmp(arg: 0, op: SCMP_CMP_NE, datum_a: 0xffff_ffff, datum_b: 0)])
        // TIOCSTI would type into the supervisor's terminal.
        try add(
            "ioctl", eperm,
            [scmp_arg_cmp(arg: 1, op: SCMP_CMP_MASKED_EQ, datum_a: 0xffff_ffff, datum_b: UInt64(TIOCSTI))])
        // No sockets but AF_UNIX (the net namespace has only its own loopback anyway).
        try add("socket", eperm, [scmp_arg_cmp(arg: 0, op: SCMP_CMP_NE, datum_a: UInt64(AF_UNIX), datum_b: 0)])
        // i386's socketcall(2) passes socket's arguments in memory the filter cannot read: its
        // SYS_SOCKET is refused whatever the family (the direct socket call is filtered above).
        try add("socketcall", eperm, [scmp_arg_cmp(arg: 0, op: SCMP_CMP_EQ, datum_a: 1, datum_b: 0)])
        if observe {
            for name in Self.observed { try add(name, SCMP_ACT_NOTIFY) }
            try add(
                "prctl", SCMP_ACT_NOTIFY,
                [scmp_arg_cmp(arg: 0, op: SCMP_CMP_EQ, datum_a: Self.observedPrctlOption, datum_b: 0)])
        }
        program = try Self.export(context)
    }

    private static func export(_ context: scmp_filter_ctx) throws -> [UInt8] {
        do {
            let fd = try sys_memfd("shmwarden-seccomp")
            defer { sys_close(fd) }
            guard seccomp_export_bpf(context, fd.rawValue) == 0 else {
                throw BuildError(description: "seccomp_export_bpf failed")
            }
            return try MountTable.readAll(fd)
        } catch let error as BuildError {
            throw error
        } catch {
            throw BuildError(description: "exporting the filter: \(error)")
        }
    }

    /// The name of syscall `number` of `architecture` (an AUDIT_ARCH_* value, as in seccomp's
    /// notifications and audit records; the native one by default).
    public static func name(of number: Int32, architecture: UInt32 = seccomp_arch_native()) -> String {
        guard let pointer = seccomp_syscall_resolve_num_arch(architecture, number) else {
            return "syscall-\(number)"
        }
        defer { free(pointer) }
        return String(cString: pointer)
    }
}
