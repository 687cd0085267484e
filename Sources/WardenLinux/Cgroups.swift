// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc

/// Where the cgroup controllers are, for putting a process under limits: cgroup v2 (one
/// hierarchy, `cgroup.controllers`), or v1 hierarchies (one per controller).
public enum Cgroups {
    /// A directory whose `cgroup.procs` a process may be written to, with its version.
    public struct Place: Hashable, Sendable {
        public var directory: [UInt8]
        /// The controllers this directory's limits cover (`memory`, `pids`, `cpu`).
        public var controllers: [String]
        public var version: Int

        public init(directory: [UInt8], controllers: [String], version: Int) {
            self.directory = directory
            self.controllers = controllers
            self.version = version
        }
    }

    /// This process's own cgroup directories for `wanted` controllers: the v2 one when v2 has
    /// them all, else the v1 hierarchies that have any. Pure: `mountInfo` and `ownCgroups` are
    /// the texts of `/proc/self/mountinfo` and `/proc/self/cgroup`; `v2Controllers` reads a
    /// directory's `cgroup.controllers`.
    public static func places(
        wanted: [String], mountInfo: [MountInfoEntry], ownCgroups: String, v2Controllers: ([UInt8]) -> [String]?
    ) -> [Place] {
        var v2Path: String?
        var v1Paths: [String: String] = [:]
        for line in ownCgroups.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if parts[0] == "0" && parts[1].isEmpty {
                v2Path = String(parts[2])
            } else {
                for controller in parts[1].split(separator: ",") { v1Paths[String(controller)] = String(parts[2]) }
            }
        }
        func join(_ mount: [UInt8], _ path: String) -> [UInt8] {
            let relative = path == "/" ? [] : Array(path.utf8)
            return mount + relative
        }
        if let v2Path, let mount = mountInfo.last(where: { $0.fsType == "cgroup2" }) {
            let directory = join(mount.mountPoint, v2Path)
            if let available = v2Controllers(directory), wanted.allSatisfy(available.contains) {
                return [Place(directory: directory, controllers: wanted, version: 2)]
            }
        }
        var places: [Place] = []
        for controller in wanted {
            guard let path = v1Paths[controller],
                let mount = mountInfo.last(where: { $0.fsType == "cgroup" && $0.superOptions.contains(controller) })
            else { continue }
            let directory = join(mount.mountPoint, path)
            if let index = places.firstIndex(where: { $0.directory == directory }) {
                places[index].controllers.append(controller)
            } else {
                places.append(Place(directory: directory, controllers: [controller], version: 1))
            }
        }
        return places
    }

    /// `places` for this process, read from the kernel.
    public static func ownPlaces(wanted: [String]) -> [Place] {
        guard let mounts = try? MountTable.read(),
            let own = try? sys_readFile(Array("/proc/self/cgroup".utf8), followingSymlinks: true)
        else { return [] }
        return places(
            wanted: wanted, mountInfo: mounts, ownCgroups: String(decoding: own, as: UTF8.self),
            v2Controllers: { directory in
                (try? sys_readFile(directory + Array("/cgroup.controllers".utf8))).map {
                    String(decoding: $0, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" }).map(
                        String.init)
                }
            })
    }
}

extension Cgroups {
    /// Writes `value` to a cgroup control file (`memory.max`, `cgroup.procs`, …).
    public static func write(_ value: String, to file: [UInt8]) throws(SystemCallError) {
        let fd = try sys_open(file, flags: O_WRONLY)
        defer { sys_close(fd) }
        let bytes = Array(value.utf8)
        let written = bytes.withUnsafeBytes { raw in Result { () throws(SystemCallError) in try sys_writeAll(fd, raw) }
        }
        try written.get()
    }

    /// A control file's text, or nil.
    public static func read(_ file: [UInt8]) -> String? {
        (try? sys_readFile(file)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// `key value` lines (`memory.events`, `pids.events`, v1's `memory.oom_control`): the value of `key`.
    public static func counter(_ key: String, in text: String?) -> Int? {
        text?.split(separator: "\n").lazy.compactMap { line -> Int? in
            let parts = line.split(separator: " ")
            return parts.count == 2 && parts[0] == key ? Int(parts[1]) : nil
        }.first
    }
}
