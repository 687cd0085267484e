// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import SystemPackage
import WardenCore
import WardenLinux

/// A cgroup leaf of a run's own, under the agent's cgroup: a ceiling on what all of the
/// sample's processes together may take (memory, process count, CPU), where rlimits bound
/// each process alone (1 GiB of address space times 64 processes is 64 GiB).
///
/// cgroup v2 where its controllers are available to this process's cgroup (under systemd, the
/// unit's `Delegate=yes`): the agent moves itself into an `agent` leaf beside the runs' (a
/// cgroup with processes cannot hand controllers down). Else the v1 hierarchies of memory,
/// pids and cpu, a leaf in each. The jail's first process writes itself into the leaves'
/// `cgroup.procs` (descriptors it is given) before anything else, so every process it starts
/// is inside.
final class SandboxCgroup {
    struct Limits {
        var memoryBytes: Int64
        var processes: Int
        /// CPUs' worth of time per period (1: one CPU).
        var cpus: Double
    }

    /// The leaves, with the controllers each covers.
    private(set) var leaves: [Cgroups.Place] = []
    /// `cgroup.procs` of each leaf, open for writing, for the jail's first process.
    private(set) var procs: [FileDescriptor] = []
    let limits: Limits

    static let wanted = ["memory", "pids", "cpu"]

    /// Leaves for run `id`, or nil (with why) where no controller can be had.
    static func make(id: String, limits: Limits) -> (SandboxCgroup?, String?) {
        let places = Cgroups.ownPlaces(wanted: wanted)
        guard !places.isEmpty else { return (nil, "no cgroup controllers (memory, pids, cpu) for this process") }
        let cgroup = SandboxCgroup(limits: limits)
        for place in places {
            do {
                try cgroup.addLeaf(in: place, id: id)
            } catch {
                cgroup.remove()
                return (nil, "cgroup v\(place.version) at \(PathBytes(place.directory)): \(error)")
            }
        }
        return (cgroup, nil)
    }

    private init(limits: Limits) { self.limits = limits }

    deinit { for fd in procs { sys_close(fd) } }

    private func addLeaf(in place: Cgroups.Place, id: String) throws(SystemCallError) {
        var parent = place.directory
        if place.version == 2 { parent = try Self.delegated(place.directory) }
        let leaf = parent + Array("/shmwarden-sandbox-\(id)".utf8)
        try sys_mkdir(leaf, permissions: 0o700)
        let controllers = place.controllers
        leaves.append(Cgroups.Place(directory: leaf, controllers: controllers, version: place.version))
        let file = { (name: String) in leaf + Array("/\(name)".utf8) }
        let period = 100_000
        for controller in controllers {
            switch (controller, place.version) {
            case ("memory", 2):
                try Cgroups.write("\(limits.memoryBytes)", to: file("memory.max"))
                try? Cgroups.write("0", to: file("memory.swap.max"))
            case ("memory", _):
                try Cgroups.write("\(limits.memoryBytes)", to: file("memory.limit_in_bytes"))
                try? Cgroups.write("\(limits.memoryBytes)", to: file("memory.memsw.limit_in_bytes"))
            case ("pids", _):
                try Cgroups.write("\(limits.processes)", to: file("pids.max"))
            case ("cpu", 2):
                try Cgroups.write("\(Int(limits.cpus * Double(period))) \(period)", to: file("cpu.max"))
            case ("cpu", _):
                try Cgroups.write("\(period)", to: file("cpu.cfs_period_us"))
                try Cgroups.write("\(Int(limits.cpus * Double(period)))", to: file("cpu.cfs_quota_us"))
            default: break
            }
        }
        procs.append(try sys_open(file("cgroup.procs"), flags: O_WRONLY))
    }

    /// Where the runs' leaves go under a v2 cgroup: `directory` itself once its controllers are
    /// handed down. A cgroup with processes cannot hand them down, so the agent's own move to
    /// an `agent` leaf first (systemd's `Delegate=yes` gives the unit this subtree).
    static func delegated(_ directory: [UInt8]) throws(SystemCallError) -> [UInt8] {
        let control = directory + Array("/cgroup.subtree_control".utf8)
        let enable = wanted.map { "+\($0)" }.joined(separator: " ")
        if (try? Cgroups.write(enable, to: control)) != nil { return directory }
        let agent = directory + Array("/agent".utf8)
        try sys_mkdir(agent, permissions: 0o755)
        for pid in (Cgroups.read(directory + Array("/cgroup.procs".utf8)) ?? "").split(separator: "\n") {
            try? Cgroups.write(String(pid), to: agent + Array("/cgroup.procs".utf8))
        }
        try Cgroups.write(enable, to: control)
        return directory
    }

    /// What the limits did to the run.
    func outcome() -> SandboxReport.Resources {
        var resources = SandboxReport.Resources(
            cgroup: "v\(leaves.first?.version ?? 0)", memoryLimitBytes: limits.memoryBytes,
            processLimit: limits.processes,
            cpuLimit: limits.cpus)
        for leaf in leaves {
            let file = { (name: String) in Cgroups.read(leaf.directory + Array("/\(name)".utf8)) }
            if leaf.controllers.contains("memory") {
                if leaf.version == 2 {
                    resources.oomKills = Cgroups.counter("oom_kill", in: file("memory.events"))
                    resources.peakMemoryBytes = file("memory.peak").flatMap { Int64($0.filter(\.isNumber)) }
                } else {
                    resources.oomKills = Cgroups.counter("oom_kill", in: file("memory.oom_control"))
                    resources.peakMemoryBytes = file("memory.max_usage_in_bytes").flatMap {
                        Int64($0.filter(\.isNumber))
                    }
                }
            }
            if leaf.controllers.contains("pids") {
                resources.processLimitHits = Cgroups.counter("max", in: file("pids.events"))
            }
        }
        return resources
    }

    /// Removes the leaves once their processes are gone (a moment after the jail's end).
    func remove() {
        for fd in procs { sys_close(fd) }
        procs = []
        for leaf in leaves {
            for _ in 0..<100 {
                sys_rmdir(leaf.directory)
                if (try? sys_lstat(leaf.directory)) == nil { break }
                usleep(2000)
            }
        }
        leaves = []
    }
}
