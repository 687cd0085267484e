// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Testing
import WardenLinux

@Suite struct CgroupsTests {
    static let hybridMounts = """
        30 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec - tmpfs tmpfs ro,mode=755
        31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw
        33 30 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,memory
        34 30 0:30 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,pids
        35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu,cpuacct

        """

    /// A hybrid host: v2 mounted without controllers, v1 hierarchies with them.
    @Test func hybridHostsUseTheV1Hierarchies() throws {
        let mounts = try MountInfoParser.parse(Array(Self.hybridMounts.utf8))
        let places = Cgroups.places(
            wanted: ["memory", "pids", "cpu"], mountInfo: mounts,
            ownCgroups: "5:pids:/user.slice\n4:memory:/process_api/x\n3:cpu,cpuacct:/\n0::/user.slice\n",
            v2Controllers: { _ in [] })
        #expect(
            places == [
                .init(
                    directory: Array("/sys/fs/cgroup/memory/process_api/x".utf8), controllers: ["memory"], version: 1),
                .init(directory: Array("/sys/fs/cgroup/pids/user.slice".utf8), controllers: ["pids"], version: 1),
                .init(directory: Array("/sys/fs/cgroup/cpu,cpuacct".utf8), controllers: ["cpu"], version: 1),
            ])
    }

    @Test func aV2HostWithItsControllersUsesV2() throws {
        let mounts = try MountInfoParser.parse(
            Array("29 24 0:25 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n".utf8))
        let places = Cgroups.places(
            wanted: ["memory", "pids", "cpu"], mountInfo: mounts, ownCgroups: "0::/system.slice/shmwarden.service\n",
            v2Controllers: { _ in ["cpuset", "cpu", "io", "memory", "pids"] })
        #expect(
            places == [
                .init(
                    directory: Array("/sys/fs/cgroup/system.slice/shmwarden.service".utf8),
                    controllers: ["memory", "pids", "cpu"], version: 2)
            ])
    }

    /// This host's own: read from the kernel, each an existing directory with a `cgroup.procs`.
    @Test func thisHostsPlacesAreDirectoriesWithProcesses() {
        for place in Cgroups.ownPlaces(wanted: ["memory", "pids", "cpu"]) {
            #expect(Cgroups.read(place.directory + Array("/cgroup.procs".utf8)) != nil, "\(place)")
        }
    }
}
