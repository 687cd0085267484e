// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

// seccomp: the filter builder (libseccomp), the ABIs and their syscall tables, and the
// user-notification listener with its answers.

import CSeccomp
import CWardenLinux
@preconcurrency import Glibc
import SystemPackage

// MARK: - ABIs and syscall numbers

/// A syscall ABI, by the AUDIT_ARCH_* token that filters test and notifications and audit
/// records carry.
public struct SeccompArchitecture: Hashable, Sendable {
    public let token: UInt32

    public init(token: UInt32) { self.token = token }

    /// The kernel's own ABI on this host.
    public static let native = SeccompArchitecture(token: seccomp_arch_native())
    /// The 32-bit ABI an x86_64 kernel also runs (i386's); nil on other hosts.
    public static let compatible: SeccompArchitecture? =
        seccomp_arch_native() == cseccomp_arch_x86_64() ? SeccompArchitecture(token: cseccomp_arch_x86()) : nil

    /// The number of syscall `name` in this ABI; nil when the ABI has no such call (libseccomp's
    /// negative pseudo-numbers, which stand for calls another ABI multiplexes, are not numbers
    /// a notification or trace carries).
    public func number(of name: String) -> Int32? {
        let number = seccomp_syscall_resolve_name_arch(token, name)
        return number >= 0 ? number : nil
    }

    /// The name of syscall `number` in this ABI; nil when it has none.
    public func name(of number: Int32) -> String? {
        guard let pointer = seccomp_syscall_resolve_num_arch(token, number) else { return nil }
        defer { free(pointer) }
        return String(cString: pointer)
    }
}

// MARK: - Filters

/// What a filter does with a call its rule matches.
public enum SeccompAction: Sendable, Equatable {
    case allow
    case killProcess
    /// The call fails with this errno without the kernel acting (0: it returns 0).
    case fail(errno: Int32)
    /// The call waits for the user-notification listener's answer (SECCOMP_RET_USER_NOTIF).
    case notify
    /// Allowed, and an audit record is written (SECCOMP_RET_LOG).
    case log

    /// The value a filter returns for it, as BPF and audit records (`code=`) give it.
    public var returnValue: UInt32 {
        switch self {
        case .allow: SCMP_ACT_ALLOW
        case .killProcess: SCMP_ACT_KILL_PROCESS
        case .fail(let errno): cseccomp_act_errno(UInt16(truncatingIfNeeded: errno))
        case .notify: SCMP_ACT_NOTIFY
        case .log: SCMP_ACT_LOG
        }
    }
}

/// A test of one syscall argument (a register: never memory it points at).
public struct SeccompComparison: Sendable {
    public enum Operation: Sendable {
        case equal, notEqual
        /// `argument & mask == value`.
        case maskedEqual(mask: UInt64)
    }
    public var argument: UInt32
    public var operation: Operation
    public var value: UInt64

    public init(argument: UInt32, _ operation: Operation, _ value: UInt64) {
        self.argument = argument
        self.operation = operation
        self.value = value
    }

    /// The test on the argument's low 32 bits only: an `int` argument's register has an upper
    /// half the caller does not set.
    public static func int(argument: UInt32, equals value: Int32) -> SeccompComparison {
        SeccompComparison(argument: argument, .maskedEqual(mask: 0xffff_ffff), UInt64(UInt32(bitPattern: value)))
    }

    var libseccomp: scmp_arg_cmp {
        switch operation {
        case .equal: scmp_arg_cmp(arg: argument, op: SCMP_CMP_EQ, datum_a: value, datum_b: 0)
        case .notEqual: scmp_arg_cmp(arg: argument, op: SCMP_CMP_NE, datum_a: value, datum_b: 0)
        case .maskedEqual(let mask): scmp_arg_cmp(arg: argument, op: SCMP_CMP_MASKED_EQ, datum_a: mask, datum_b: value)
        }
    }
}

public struct SeccompBuildError: Error, CustomStringConvertible {
    public var description: String
}

/// A filter being built with libseccomp: calls are allowed unless a rule says otherwise, calls
/// of any ABI the filter does not cover kill the process, and the rules are searched as a
/// binary tree (libseccomp 2.5+). Exported as BPF for a launcher to load, so no libseccomp call
/// runs between fork and exec.
public final class SeccompFilterBuilder {
    private var context: scmp_filter_ctx?

    /// A filter for the native ABI, or for `architecture` alone.
    public init(architecture: SeccompArchitecture? = nil) throws(SeccompBuildError) {
        guard let context = seccomp_init(SCMP_ACT_ALLOW) else {
            throw SeccompBuildError(description: "seccomp_init failed")
        }
        self.context = context
        // Another ABI's syscall numbers (x32 on x86_64, or any but those covered) must not slip
        // past the rules.
        guard seccomp_attr_set(context, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) == 0 else {
            throw SeccompBuildError(description: "seccomp_attr_set(ACT_BADARCH) failed")
        }
        if let architecture, architecture != .native {
            let removed = seccomp_arch_remove(context, seccomp_arch_native())
            let added = seccomp_arch_add(context, architecture.token)
            guard removed == 0 && added == 0 else {
                throw SeccompBuildError(description: "seccomp_arch_remove: \(removed), seccomp_arch_add: \(added)")
            }
        }
        // Every call the process makes passes the filter: a binary search over the numbers
        // rather than a linear walk. Older libseccomps keep the linear one, which enforces the same.
        _ = seccomp_attr_set(context, SCMP_FLTATR_CTL_OPTIMIZE, 2)
    }

    deinit {
        if let context { seccomp_release(context) }
    }

    /// Adds a rule for syscall `name`; a call this ABI does not have is skipped.
    public func add(_ name: String, _ action: SeccompAction, _ comparisons: [SeccompComparison] = [])
        throws(SeccompBuildError)
    {
        let number = seccomp_syscall_resolve_name(name)
        guard number != __NR_SCMP_ERROR else { return }
        let arguments = comparisons.map(\.libseccomp)
        let result = arguments.withUnsafeBufferPointer {
            seccomp_rule_add_array(context, action.returnValue, number, UInt32($0.count), $0.baseAddress)
        }
        guard result == 0 else { throw SeccompBuildError(description: "seccomp rule for \(name): \(result)") }
    }

    /// Takes the rules of `other` (a filter of another ABI) into this one.
    public func merge(_ other: SeccompFilterBuilder) throws(SeccompBuildError) {
        let merged = seccomp_merge(context, other.context)
        guard merged == 0 else { throw SeccompBuildError(description: "seccomp_merge: \(merged)") }
        other.context = nil  // released by the merge
    }

    /// The BPF program: `struct sock_filter` records, 8 bytes each.
    public func exportBPF() throws(SeccompBuildError) -> [UInt8] {
        do {
            let fd = try sys_memfd("shmwarden-seccomp")
            defer { sys_close(fd) }
            guard seccomp_export_bpf(context, fd.rawValue) == 0 else {
                throw SeccompBuildError(description: "seccomp_export_bpf failed")
            }
            try sys_lseek(fd, to: 0)
            return try sys_readToEnd(fd)
        } catch let error as SeccompBuildError {
            throw error
        } catch {
            throw SeccompBuildError(description: "exporting the filter: \(error)")
        }
    }
}

// MARK: - User notifications

/// The six syscall arguments of a notification, as registers.
public typealias SeccompArguments = (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

/// One call waiting for the listener's answer.
public struct SeccompNotification {
    public var id: UInt64
    public var pid: Int32
    public var architecture: UInt32
    public var number: Int32
    public var instructionPointer: UInt64
    public var arguments: SeccompArguments
}

/// The listener end of a filter's user notifications (`SECCOMP_RET_USER_NOTIF`). Each answer
/// is also the notification's validity check: it fails (ENOENT) once the call no longer waits,
/// the process having died and its pid perhaps naming another since.
///
/// - Important: Not thread-safe: one thread receives and answers (its buffers are reused).
public final class SeccompListener {
    public let descriptor: FileDescriptor
    private let request: UnsafeMutablePointer<seccomp_notif>
    private let response: UnsafeMutablePointer<seccomp_notif_resp>

    /// A listener on `descriptor` (not owned: the caller closes it).
    public init(_ descriptor: FileDescriptor) throws(SystemCallError) {
        var request: UnsafeMutablePointer<seccomp_notif>?
        var response: UnsafeMutablePointer<seccomp_notif_resp>?
        let result = seccomp_notify_alloc(&request, &response)
        guard result == 0, let request, let response else {
            throw SystemCallError(
                syscall: "seccomp_notify_alloc", errno: Errno(rawValue: result < 0 ? -result : ENOMEM))
        }
        self.descriptor = descriptor
        self.request = request
        self.response = response
    }

    deinit { seccomp_notify_free(request, response) }

    /// Asks for synchronous wake-ups (Linux 6.6+): the waiting task and the listener hand over
    /// on one CPU. On those kernels RECV also waits on the queue poll uses, and fails with ENOENT
    /// once the last filtered process is gone. False on older kernels.
    public func requestSynchronousWakeUps() -> Bool {
        warden_seccomp_sync_wakeup(descriptor.rawValue) == 0
    }

    /// The next notification, waiting for one (SECCOMP_IOCTL_NOTIF_RECV).
    /// ENOENT: the caller died meanwhile, or (synchronous wake-ups) the last process left.
    public func receive() throws(SystemCallError) -> SeccompNotification {
        memset(request, 0, MemoryLayout<seccomp_notif>.size)  // the kernel wants it zeroed
        let result = seccomp_notify_receive(descriptor.rawValue, request)
        guard result == 0 else {
            throw SystemCallError(syscall: "SECCOMP_IOCTL_NOTIF_RECV", errno: Errno(rawValue: -result))
        }
        let data = request.pointee.data
        return SeccompNotification(
            id: request.pointee.id, pid: Int32(bitPattern: request.pointee.pid), architecture: data.arch,
            number: data.nr, instructionPointer: data.instruction_pointer, arguments: data.args)
    }

    /// Whether no filtered process is left and nothing is queued (a poll that does not wait).
    public var isHungUp: Bool {
        var fds = [pollfd(fd: descriptor.rawValue, events: Int16(POLLIN), revents: 0)]
        guard (try? sys_poll(&fds, timeout: 0)) != nil else { return true }
        return fds[0].revents & Int16(POLLIN) == 0 && fds[0].revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0
    }

    /// Lets call `id` proceed as the kernel would (SECCOMP_USER_NOTIF_FLAG_CONTINUE); false when
    /// it no longer waits.
    public func proceed(_ id: UInt64) -> Bool {
        respond(id, flags: UInt32(SECCOMP_USER_NOTIF_FLAG_CONTINUE), value: 0, error: 0)
    }

    /// Answers call `id` without the kernel acting: it returns `value`.
    public func answer(_ id: UInt64, returning value: Int64) -> Bool {
        respond(id, flags: 0, value: value, error: 0)
    }

    /// Answers call `id` without the kernel acting: it fails with `errno`.
    public func answer(_ id: UInt64, failingWith errno: Int32) -> Bool {
        respond(id, flags: 0, value: 0, error: -errno)
    }

    /// Whether call `id` still waits (SECCOMP_IOCTL_NOTIF_ID_VALID).
    public func isWaiting(_ id: UInt64) -> Bool {
        seccomp_notify_id_valid(descriptor.rawValue, id) == 0
    }

    /// Answers call `id` by installing a copy of `fd` in the waiting process, as what its call
    /// returns (SECCOMP_ADDFD_FLAG_SEND, Linux 5.14+); the new descriptor's number there.
    public func answer(_ id: UInt64, installing fd: FileDescriptor, closeOnExec: Bool) throws(SystemCallError)
        -> Int32
    {
        try retryingInterrupts("SECCOMP_IOCTL_NOTIF_ADDFD") {
            warden_seccomp_add_fd_and_answer(descriptor.rawValue, id, fd.rawValue, closeOnExec ? 1 : 0)
        }
    }

    /// Puts a copy of `fd` at descriptor `target` of the process waiting on call `id`, in place
    /// of what was there (dup2's way), without answering the call.
    public func replaceDescriptor(
        _ target: Int32, with fd: FileDescriptor, whileWaiting id: UInt64, closeOnExec: Bool
    ) throws(SystemCallError) {
        _ = try retryingInterrupts("SECCOMP_IOCTL_NOTIF_ADDFD") {
            warden_seccomp_replace_fd(descriptor.rawValue, id, fd.rawValue, target, closeOnExec ? 1 : 0)
        }
    }

    private func respond(_ id: UInt64, flags: UInt32, value: Int64, error: Int32) -> Bool {
        memset(response, 0, MemoryLayout<seccomp_notif_resp>.size)
        response.pointee.id = id
        response.pointee.flags = flags
        response.pointee.val = value
        response.pointee.error = error
        return seccomp_notify_respond(descriptor.rawValue, response) == 0
    }
}
