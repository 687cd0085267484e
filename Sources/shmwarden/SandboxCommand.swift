// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import WardenCore
import WardenDaemon
import WardenResponse
import WardenSandbox
import WardenStore

struct SandboxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Run a copy of a sample in a jail and report what it tried to do.",
        discussion: """
            The copy runs from a private tmpfs (verified by SHA-256, executed through its \
            descriptor) in new pid, mount, net, ipc, uts and cgroup namespaces with a minimal \
            read-only root, its own /tmp, no network but its own loopback, an unprivileged uid with \
            no capabilities, no_new_privs, rlimits and a seccomp filter that kills or refuses \
            ptrace, mount, namespaces, bpf, kexec, module loading, io_uring, TIOCSTI and non-unix sockets \
            (for 32-bit x86 programs too, on x86_64). \
            execve, open, connect, sendto, bind, listen, clone, unlink, rename, link, symlink, mkdir, chmod, \
            kill, memfd_create and prctl(PR_SET_NAME) are observed through seccomp user notification, \
            and what the kernel returned for each is traced (a BPF program on the sys_exit \
            tracepoint), so the report says what was done and what was refused, and why. \
            Observed, an IPv4 or IPv6 socket is a unix socket standing in, and its connects, sends \
            and binds are reported and answered by the supervisor: a TCP connect to an outside \
            address reaches a sink that keeps what the sample sends and answers an HTTP request (an \
            empty 200) or a TLS ClientHello (an alert); a stand-in's names and IP-level options \
            are those of the socket it stands for. Host names looked up through glibc or by DNS \
            are reported and answered with addresses of their own (198.18.0.0/15, routed nowhere), \
            so a connection to a C2 by name reaches the sink and is reported under the name. \
            Nothing leaves the jail. At the time limit \
            the whole pid namespace is killed. Needs root. Every run is stored; --list lists them and \
            --show ID prints one again (an alert's report names the runs of its files).
            """)

    @OptionGroup var state: StateOptions

    @Argument(help: "The sample to run (it is copied; the original is never executed).")
    var file: String?

    @Option(help: "Print the stored run with this id instead of running a file.")
    var show: String?

    @Flag(help: "List the stored runs, newest first (id, time, sha256, how it ended).")
    var list = false

    @Option(help: "Wall-clock limit in seconds (1-3600).")
    var timeout: Int = 10

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Flag(help: "Print the report as Markdown (for a ticket or an incident note).")
    var markdown = false

    @Flag(help: "Do not observe with seccomp user notification (the filter still enforces).")
    var noObserve = false

    @Flag(
        help: """
            Do not trace what the kernel returned for the observed calls (the report then says \
            what the sample tried, not what was refused): a syscall-heavy sample runs 4-15% \
            faster.
            """)
    var noResults = false

    @Flag(
        help: """
            Answer every host name as not found (but localhost), instead of with an address of its \
            own that leads to the sink: for a sample that checks that a name which should not \
            exist does not resolve.
            """)
    var namesNotFound = false

    @Argument(parsing: .postTerminator, help: "Arguments for the sample, after --.")
    var arguments: [String] = []

    /// The parsed values as a plain request (what runs).
    var request: SandboxRequest {
        SandboxRequest(
            state: state.settings, file: file, show: show, list: list, timeout: timeout, json: json,
            markdown: markdown, noObserve: noObserve, noResults: noResults, namesNotFound: namesNotFound,
            arguments: arguments)
    }

    func validate() throws { try request.validate() }

    func run() throws { try request.run() }
}
