// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Testing
import WardenLinux

@Suite struct MountInfoParserTests {
    /// Written for these tests in the kernel's format (proc(5)); modelled on a Docker host with
    /// a containerd CRI pod, a stacked /dev/shm and a few awkward mount points.
    static let fixture = """
        22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
        25 22 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=4096k,nr_inodes=1024,mode=755
        29 25 0:26 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw,size=65536k,inode64
        30 29 0:27 / /dev/shm rw,nosuid,nodev,noexec,relatime shared:5 - tmpfs shm rw,size=65536k
        31 22 0:28 / /run rw,nosuid,nodev,noexec,relatime shared:6 - tmpfs tmpfs rw,size=2432768k,mode=755
        101 22 0:45 / /var/lib/docker/containers/abc123/mounts/shm rw,nosuid,nodev,noexec,relatime shared:60 - tmpfs shm rw,size=65536k,inode64
        102 31 0:46 / /run/containerd/io.containerd.grpc.v1.cri/sandboxes/f00d/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=65536k
        103 22 0:47 /sub/dir /mnt/with\\040space rw,relatime master:3 propagate_from:2 - tmpfs tmpfs rw
        104 22 0:48 / /mnt/tab\\011and\\012newline\\134back rw shared:9 master:10 - tmpfs none rw,mode=1777
        105 22 0:49 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw

        """

    @Test func parsesEveryField() throws {
        let entries = try MountInfoParser.parse(Array(Self.fixture.utf8))
        #expect(entries.count == 10)
        let shm = entries[3]
        #expect(shm.mountID == 30)
        #expect(shm.parentID == 29)
        #expect(shm.major == 0 && shm.minor == 27)
        #expect(shm.deviceName == "0:27")
        #expect(shm.root == Array("/".utf8))
        #expect(shm.mountPoint == Array("/dev/shm".utf8))
        #expect(shm.mountOptions == ["rw", "nosuid", "nodev", "noexec", "relatime"])
        #expect(shm.optionalFields == ["shared:5"])
        #expect(shm.fsType == "tmpfs")
        #expect(shm.source == Array("shm".utf8))
        #expect(shm.superOptions == ["rw", "size=65536k"])
        #expect(shm.isTmpfs && shm.isNoExec && shm.isNoSuid && shm.isNoDev && !shm.isReadOnly)
    }

    @Test func optionalFieldsMayBeAbsentOrSeveral() throws {
        let entries = try MountInfoParser.parse(Array(Self.fixture.utf8))
        #expect(entries[6].optionalFields.isEmpty)
        #expect(entries[7].optionalFields == ["master:3", "propagate_from:2"])
        #expect(entries[8].optionalFields == ["shared:9", "master:10"])
    }

    @Test func escapedBytesAreDecoded() throws {
        let entries = try MountInfoParser.parse(Array(Self.fixture.utf8))
        #expect(entries[7].mountPoint == Array("/mnt/with space".utf8))
        #expect(entries[8].mountPoint == Array("/mnt/tab\tand\nnewline\\back".utf8))
        #expect(MountInfoParser.unescape(Array("a\\0b\\999\\".utf8)) == Array("a\\0b\\999\\".utf8))
        #expect(MountInfoParser.unescape(Array("\\377".utf8)) == [0xff])
    }

    @Test func bindMountKeepsItsRoot() throws {
        let entries = try MountInfoParser.parse(Array(Self.fixture.utf8))
        #expect(entries[7].root == Array("/sub/dir".utf8))
    }

    @Test func containerShmMountsAreTmpfs() throws {
        let entries = try MountInfoParser.parse(Array(Self.fixture.utf8))
        let tmpfs = entries.filter(\.isTmpfs).map { String(decoding: $0.mountPoint, as: UTF8.self) }
        #expect(tmpfs.contains("/var/lib/docker/containers/abc123/mounts/shm"))
        #expect(tmpfs.contains("/run/containerd/io.containerd.grpc.v1.cri/sandboxes/f00d/shm"))
        #expect(!tmpfs.contains("/dev"))
        #expect(!tmpfs.contains("/proc"))
    }

    @Test func stackedMountsCountOnceAsTheTopmost() throws {
        let visible = MountInfoParser.visible(try MountInfoParser.parse(Array(Self.fixture.utf8)))
        let shm = visible.filter { $0.mountPoint == Array("/dev/shm".utf8) }
        #expect(shm.count == 1)
        #expect(shm.first?.mountID == 30)
        #expect(visible.count == 9)
    }

    @Test func deviceNumberMatchesStat() throws {
        // The live table's /proc entry must carry the st_dev that stat reports for /proc.
        let entries = try MountTable.read()
        let proc = try #require(MountInfoParser.visible(entries).first { $0.mountPoint == Array("/proc".utf8) })
        #expect(proc.device == (try sys_lstat(Array("/proc".utf8))).device)
    }

    @Test func malformedLinesAreRejectedWithTheirNumber() {
        #expect(throws: MountInfoParseError.self) {
            try MountInfoParser.parse(Array("22 1 0:21 / / rw shared:1 ext4 /dev/vda rw\n".utf8))
        }
        do {
            _ = try MountInfoParser.parse(Array("22 1 254:0 / / rw - ext4 /dev/vda rw\nx y 0:1 / / rw - a b c\n".utf8))
            Issue.record("expected a parse error")
        } catch let error as MountInfoParseError {
            #expect(error.line == 2)
        } catch {
            Issue.record("unexpected \(error)")
        }
        // Two fields after the separator, not three (the fuzzer's first find: it read past the end).
        #expect(throws: MountInfoParseError.self) {
            try MountInfoParser.parse(Array("22 27 0:21 / /proc rw,relatime - proc proc\n".utf8))
        }
    }
}
