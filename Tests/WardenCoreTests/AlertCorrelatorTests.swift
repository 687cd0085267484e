// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenCore

/// An in-memory store for the correlator's port.
struct InMemoryEvidence: EvidenceLookup {
    var records: [FileRecord]
    func files(atPath path: PathBytes) -> [FileRecord] { records.filter { $0.path == path } }
    func files(inode: UInt64) -> [FileRecord] { records.filter { $0.inode == inode } }
    func files(sha256: String) -> [FileRecord] { records.filter { $0.sha256 == sha256 } }
}

func fileRecord(id: Int64, _ path: String, inode: UInt64 = 100, seen: String, deleted: String? = nil) -> FileRecord {
    let first = Timestamp(rfc3339: seen) ?? Timestamp(nanosecondsSinceEpoch: 0)
    return FileRecord(
        id: id, path: PathBytes(path), mountPoint: nil, fileType: .regular, device: 1, inode: inode, size: 10,
        mode: 0o100755, uid: 0, gid: 0, linkCount: 1, modified: first, changed: first, firstSeen: first,
        lastSeen: first,
        deletedAt: deleted.flatMap { Timestamp(rfc3339: $0) }, state: deleted == nil ? .present : .deleted, kind: .elf,
        reasons: [.elf], hashStatus: .ok, sha256: String(repeating: String(id % 10), count: 64))
}

/// A record of bytes taken from process `pid`, started at `started`.
func capturedRecord(id: Int64, pid: Int32, started: String?, seen: String) -> FileRecord {
    var record = fileRecord(id: id, "/memfd:payload (deleted)", inode: UInt64(1000 + id), seen: seen)
    record.capture = ProcessCapture(
        kind: .memfd, source: "/proc/\(pid)/exe", pid: pid, ppid: 1, uid: 0, executable: record.path,
        commandLine: ["payload"], started: started.flatMap { Timestamp(rfc3339: $0) }, containerID: nil)
    return record
}

struct CapturedEvidence: EvidenceLookup {
    var records: [FileRecord]
    func files(atPath path: PathBytes) -> [FileRecord] { [] }
    func files(inode: UInt64) -> [FileRecord] { [] }
    func files(sha256: String) -> [FileRecord] { [] }
    func capturedFiles(pid: Int32) -> [FileRecord] { records.filter { $0.capture?.pid == pid } }
}

@Suite struct AlertCorrelatorTests {
    let mounts = [PathBytes("/dev/shm"), PathBytes("/var/lib/docker/containers/0123456789abcdef/mounts/shm")]

    func alert(_ json: String) throws -> FalcoAlert { try FalcoAlert.decode(Data(json.utf8)) }

    @Test func hostPathByExepath() throws {
        let evidence = InMemoryEvidence(records: [fileRecord(id: 1, "/dev/shm/x", seen: "2026-11-29T12:00:00Z")])
        let result = try AlertCorrelator.correlate(
            alert(AlertFixtures.executionFromDevShm), tmpfsMounts: mounts, lookup: evidence)
        let match = try #require(result.correlations.first)
        #expect(match.fileID == 1)
        #expect(match.matchedBy.contains("proc.exepath"))
        #expect(match.matchedBy.contains("fd.name"))
        #expect(match.confidence > 0.95)
        #expect(result.noEvidenceReason == nil)
    }

    @Test func deletedFilesStillMatchTheirEvidence() throws {
        let evidence = InMemoryEvidence(records: [
            fileRecord(id: 1, "/dev/shm/x", seen: "2026-11-29T12:00:00Z", deleted: "2026-11-29T12:00:01.5Z")
        ])
        let result = try AlertCorrelator.correlate(
            alert(AlertFixtures.executionFromDevShm), tmpfsMounts: mounts, lookup: evidence)
        #expect(result.correlations.map(\.fileID) == [1])
    }

    @Test func aFileThatDidNotExistThenDoesNotMatch() throws {
        let evidence = InMemoryEvidence(records: [
            fileRecord(id: 1, "/dev/shm/x", seen: "2026-11-29T11:00:00Z", deleted: "2026-11-29T11:00:01Z"),
            fileRecord(id: 2, "/dev/shm/x", seen: "2026-11-29T13:00:00Z"),
        ])
        let result = try AlertCorrelator.correlate(
            alert(AlertFixtures.executionFromDevShm), tmpfsMounts: mounts, lookup: evidence)
        #expect(result.correlations.isEmpty)
        #expect(result.noEvidenceReason == .neverSeen)
    }

    @Test func containerPathMapsToTheRuntimesShmMount() throws {
        let hostPath = "/var/lib/docker/containers/0123456789abcdef/mounts/shm/payload"
        let evidence = InMemoryEvidence(records: [
            fileRecord(id: 7, hostPath, inode: 555, seen: "2026-11-29T11:00:01Z"),
            fileRecord(
                id: 8, "/dev/shm/payload", inode: 556, seen: "2026-11-29T09:00:00Z", deleted: "2026-11-29T09:00:01Z"),
        ])
        let result = try AlertCorrelator.correlate(
            alert(AlertFixtures.dropAndExecute), tmpfsMounts: mounts, lookup: evidence)
        let match = try #require(result.correlations.first)
        #expect(match.fileID == 7)
        #expect(match.path == PathBytes(hostPath))
        #expect(match.matchedBy.contains("container-shm-mount"))
        #expect(result.correlations.count == 1)
    }

    /// A container whose /dev/shm mount is not among the host's tmpfs mounts: the reason says so
    /// instead of claiming the path is on a watched tmpfs (only the host's /dev/shm, shared
    /// under --ipc=host, was looked at). Once its mount is known, a miss is `neverSeen` again.
    @Test func aContainerWhoseShmMountIsUnknownSaysSo() throws {
        let evidence = InMemoryEvidence(records: [])
        let unknownMount = try AlertCorrelator.correlate(
            alert(AlertFixtures.dropAndExecute), tmpfsMounts: [PathBytes("/dev/shm")], lookup: evidence)
        #expect(unknownMount.noEvidenceReason == .containerShmNotFound)
        #expect(unknownMount.noEvidenceReason?.mayStillBeFound == true)
        let knownMount = try AlertCorrelator.correlate(
            alert(AlertFixtures.dropAndExecute), tmpfsMounts: mounts, lookup: evidence)
        #expect(knownMount.noEvidenceReason == .neverSeen)
        // A host alert's miss on the host's /dev/shm stays `neverSeen`.
        let host = try AlertCorrelator.correlate(
            alert(AlertFixtures.executionFromDevShm), tmpfsMounts: [PathBytes("/dev/shm")], lookup: evidence)
        #expect(host.noEvidenceReason == .neverSeen)
    }

    /// Kubernetes: the runtime names a pod's shm mount after the pod's sandbox, not the container
    /// (containerd's CRI, CRI-O); with Falco's `k8s.pod.sandbox_id` the right pod's file matches
    /// in full, and another pod's file of the same name does not match at all.
    @Test(arguments: [
        "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/SANDBOX/shm",
        "/run/containers/storage/overlay-containers/SANDBOX/userdata/shm",
    ])
    func podPathsMapToTheirSandboxesShmMount(pattern: String) throws {
        let ours = pattern.replacingOccurrences(of: "SANDBOX", with: "63060edc2d3a" + String(repeating: "1", count: 52))
        let other = pattern.replacingOccurrences(
            of: "SANDBOX", with: "77777edc2d3a" + String(repeating: "2", count: 52))
        let evidence = InMemoryEvidence(records: [
            fileRecord(id: 1, ours + "/payload", seen: "2026-11-29T11:59:00Z"),
            fileRecord(id: 2, other + "/payload", seen: "2026-11-29T11:59:00Z"),
        ])
        let fields = #""proc.exepath":"/dev/shm/payload","container.id":"aaaaaaaaaaaa""#
        func correlate(_ extra: String) throws -> CorrelationResult {
            let json = """
                {"rule":"Drop and execute new binary in container","priority":"Critical","time":"2026-11-29T12:00:00Z","output_fields":{\(fields)\(extra)}}
                """
            return try AlertCorrelator.correlate(
                alert(json), tmpfsMounts: [PathBytes("/dev/shm"), PathBytes(ours), PathBytes(other)], lookup: evidence)
        }
        let known = try correlate(#","k8s.pod.sandbox_id":"63060edc2d3a""#)
        #expect(known.correlations.map(\.fileID) == [1])
        let match = try #require(known.correlations.first)
        #expect(match.matchedBy == "proc.exepath+pod-sandbox-shm-mount")
        #expect(match.confidence >= 0.9)
        // Without the field, either pod's file may be the one: both, at half the confidence.
        let unknown = try correlate("")
        #expect(Set(unknown.correlations.map(\.fileID)) == [1, 2])
        #expect(
            unknown.correlations.allSatisfy {
                $0.confidence < 0.5 && $0.matchedBy.hasSuffix("+any-container-shm-mount")
            })
    }

    @Test func argvOnlyPathsMatchWithLowerConfidence() throws {
        let json = """
            {"rule":"Execution from /dev/shm","priority":"Warning","time":"2026-11-29T12:00:00Z","output_fields":{"proc.exepath":"/usr/bin/bash","proc.cmdline":"sh /dev/shm/run.sh --now","proc.cwd":"/"}}
            """
        let evidence = InMemoryEvidence(records: [fileRecord(id: 3, "/dev/shm/run.sh", seen: "2026-11-29T11:59:00Z")])
        let result = try AlertCorrelator.correlate(alert(json), tmpfsMounts: mounts, lookup: evidence)
        let match = try #require(result.correlations.first)
        #expect(match.matchedBy == "proc.cmdline")
        #expect(match.confidence < 0.7)
    }

    @Test func relativeExeJoinsTheWorkingDirectory() throws {
        let json = """
            {"rule":"Execution from /dev/shm","priority":"Warning","time":"2026-11-29T12:00:00Z","output_fields":{"proc.exe":"./tool","proc.cwd":"/dev/shm/work/"}}
            """
        let evidence = InMemoryEvidence(records: [fileRecord(id: 4, "/dev/shm/work/tool", seen: "2026-11-29T11:59:00Z")]
        )
        let result = try AlertCorrelator.correlate(alert(json), tmpfsMounts: mounts, lookup: evidence)
        #expect(result.correlations.first?.matchedBy == "proc.exe+proc.cwd")
    }

    /// Words of the command line split at spaces and tabs; absolute paths, and `./`, `../`
    /// joined to the working directory; anything else is not a path.
    @Test func commandLineWordsThatArePaths() throws {
        let json = """
            {"rule":"r","priority":"Warning","time":"2026-11-29T12:00:00Z","output_fields":{"proc.cmdline":"sh\\t../x/run.sh  /dev/shm/a <NA> -c ./b .hidden ..c","proc.cwd":"/dev/shm/w"}}
            """
        let evidence = InMemoryEvidence(records: [
            fileRecord(id: 1, "/dev/shm/x/run.sh", seen: "2026-11-29T11:59:00Z"),
            fileRecord(id: 2, "/dev/shm/a", seen: "2026-11-29T11:59:00Z"),
            fileRecord(id: 3, "/dev/shm/w/b", seen: "2026-11-29T11:59:00Z"),
            fileRecord(id: 4, "/dev/shm/w/.hidden", seen: "2026-11-29T11:59:00Z"),
            fileRecord(id: 5, "/dev/shm/..c", seen: "2026-11-29T11:59:00Z"),
        ])
        let result = try AlertCorrelator.correlate(alert(json), tmpfsMounts: mounts, lookup: evidence)
        let matched = Dictionary(uniqueKeysWithValues: result.correlations.map { ($0.fileID, $0.matchedBy) })
        #expect(matched == [1: "proc.cmdline+proc.cwd", 2: "proc.cmdline", 3: "proc.cmdline+proc.cwd"])
    }

    @Test func memfdExecutionByTheExecFlagsAlone() throws {
        let empty = InMemoryEvidence(records: [])
        func reason(_ flags: String) throws -> NoEvidenceReason? {
            let json = """
                {"rule":"r","priority":"Warning","time":"2026-11-29T12:00:00Z","output_fields":{"evt.arg.flags":"\(flags)","proc.exepath":"/dev/shm/x"}}
                """
            return try AlertCorrelator.correlate(alert(json), tmpfsMounts: mounts, lookup: empty).noEvidenceReason
        }
        #expect(try reason("EXE_WRITABLE|EXE_FROM_MEMFD") == .memfdExecution)
        #expect(try reason("EXE_FROM_MEMFD") == .memfdExecution)
        #expect(try reason("EXE_WRITABLE|EXE_FROM_MEMF") == .neverSeen)
        #expect(try reason("") == .neverSeen)
    }

    @Test func inodeAloneMatchesOnlyOnOurMounts() throws {
        let json = """
            {"rule":"r","priority":"Warning","time":"2026-11-29T12:00:00Z","output_fields":{"proc.exe_ino":777}}
            """
        let evidence = InMemoryEvidence(records: [
            fileRecord(id: 5, "/dev/shm/a", inode: 777, seen: "2026-11-29T11:00:00Z"),
            fileRecord(id: 6, "/home/user/a", inode: 777, seen: "2026-11-29T11:00:00Z"),
        ])
        let result = try AlertCorrelator.correlate(alert(json), tmpfsMounts: mounts, lookup: evidence)
        #expect(result.correlations.map(\.fileID) == [5])
        #expect(result.correlations.first?.matchedBy == "proc.exe_ino")
    }

    @Test func reasonsWhenThereIsNoEvidence() throws {
        let empty = InMemoryEvidence(records: [])
        #expect(
            try AlertCorrelator.correlate(alert(AlertFixtures.memfd), tmpfsMounts: mounts, lookup: empty)
                .noEvidenceReason
                == .memfdExecution)
        #expect(
            try AlertCorrelator.correlate(alert(AlertFixtures.eventDrop), tmpfsMounts: mounts, lookup: empty)
                .noEvidenceReason
                == .internalEvent)
        #expect(
            try AlertCorrelator.correlate(alert(AlertFixtures.sidekick), tmpfsMounts: mounts, lookup: empty)
                .noEvidenceReason
                == .noPathInAlert)
        let outside = """
            {"rule":"r","priority":"Warning","time":"2026-11-29T12:00:00Z","output_fields":{"proc.exepath":"/usr/local/bin/tool"}}
            """
        #expect(
            try AlertCorrelator.correlate(alert(outside), tmpfsMounts: mounts, lookup: empty).noEvidenceReason
                == .pathOutsideTmpfs)
        #expect(
            try AlertCorrelator.correlate(alert(AlertFixtures.executionFromDevShm), tmpfsMounts: mounts, lookup: empty)
                .noEvidenceReason == .neverSeen)
    }

    @Test func aHashInTheAlertMatchesDirectly() throws {
        let record = fileRecord(id: 9, "/dev/shm/h", seen: "2026-11-29T11:00:00Z")
        let sha = try #require(record.sha256)
        let json = """
            {"rule":"r","priority":"Warning","time":"2026-11-29T12:00:00Z","output_fields":{"custom.sha256":"\(sha.uppercased())"}}
            """
        let result = try AlertCorrelator.correlate(
            alert(json), tmpfsMounts: mounts, lookup: InMemoryEvidence(records: [record]))
        #expect(result.correlations.first?.fileID == 9)
        #expect(result.correlations.first?.confidence == 0.99)
    }

    /// The alert's pid, matched to what was taken from that process: the newest process with
    /// that pid started by the alert's time, not an older or later one that had the same pid.
    @Test func aCaptureMatchesTheProcessThatHadThePidAtTheAlertsTime() throws {
        let memfdAlert = try alert(
            """
            {"rule": "Fileless execution via memfd_create", "priority": "Critical", "time": "2026-11-29T12:00:00Z",
             "output": "x", "output_fields": {"proc.pid": 77, "proc.exepath": "memfd:payload", "proc.is_exe_from_memfd": true}}
            """)
        let evidence = CapturedEvidence(records: [
            capturedRecord(id: 1, pid: 77, started: "2026-11-29T10:00:00Z", seen: "2026-11-29T10:00:00Z"),
            capturedRecord(id: 2, pid: 77, started: "2026-11-29T11:59:59Z", seen: "2026-11-29T11:59:59Z"),
            capturedRecord(id: 3, pid: 77, started: "2026-11-29T13:00:00Z", seen: "2026-11-29T13:00:00Z"),
            capturedRecord(id: 4, pid: 78, started: "2026-11-29T11:59:59Z", seen: "2026-11-29T11:59:59Z"),
        ])
        let result = try AlertCorrelator.correlate(memfdAlert, tmpfsMounts: mounts, lookup: evidence)
        #expect(result.correlations.map(\.fileID) == [2])
        #expect(result.correlations.first?.matchedBy == "process-capture:proc.pid")
        #expect(result.correlations.first?.basis == .kernel)

        let none = CapturedEvidence(records: [])
        for (arrival, reason) in [
            (nil, NoEvidenceReason.memfdExecution), (.gone, .memfdProcessExited), (.running, .memfdNotCaptured),
        ] as [(ProcessAtArrival?, NoEvidenceReason)] {
            let empty = try AlertCorrelator.correlate(
                memfdAlert, tmpfsMounts: mounts, lookup: none, processAtArrival: arrival)
            #expect(empty.noEvidenceReason == reason)
            #expect(reason.isMemfd && reason.mayStillBeFound)
        }
    }
}
