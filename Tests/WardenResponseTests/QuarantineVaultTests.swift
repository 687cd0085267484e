// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
@preconcurrency import Glibc
import Synchronization
import Testing
import WardenCore
import WardenLinux
import WardenResponse
import WardenTestSupport

/// Quarantine from a real tmpfs into a state directory on another filesystem.
@Suite(.enabled(if: TestEnvironment.isRoot, "needs root for tmpfs, chown and 0000 files"))
struct QuarantineVaultTests {
    let mount: TestMount
    let state: String
    let content = Data("\u{7f}ELF-not-really, a sample\n".utf8) + Data((0..<4096).map { UInt8($0 % 251) })

    init() throws {
        mount = try TestMount()
        state = makeStateDirectory()
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
    }

    func cleanUp() {
        mount.remove()
        try? FileManager.default.removeItem(atPath: state)
    }

    func dropSample(_ name: [UInt8]) throws -> [UInt8] {
        let path = Array(mount.path.utf8) + [UInt8(ascii: "/")] + name
        try writeFile(path, content, mode: 0o4755)
        _ = (path.map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer { lchown($0.baseAddress!, 1234, 5678) }
        // chown clears set-uid: put the mode back so restore has all bits to bring back.
        _ = (path.map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer { chmod($0.baseAddress!, 0o4755) }
        return path
    }

    /// A file larger than the quarantine takes, counted while copying (a petabyte sparse file
    /// costs nothing on tmpfs), is left in place and nothing of it is kept.
    @Test func aFileBeyondTheCapIsLeftInPlace() throws {
        defer { cleanUp() }
        let path = try dropSample(Array("huge".utf8))
        let cPath = path.map { CChar(bitPattern: $0) } + [0]
        #expect(truncate(cPath, 1 << 50) == 0)
        let vault = try QuarantineVault(directory: state + "/quarantine", maxSampleBytes: 1 << 20)
        let started = ContinuousClock.now
        #expect {
            try vault.quarantine(PathBytes(path), alertIDs: [], fileID: nil)
        } throws: { error in
            (error as? QuarantineError)?.kind == .tooLarge
        }
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(lstatOf(path) != nil, "the original stays")
        let left = try FileManager.default.contentsOfDirectory(atPath: state + "/quarantine").filter { $0 != "journal" }
        #expect(left.isEmpty, "\(left)")
    }

    @Test func quarantineThenRestoreBringsBackBytesOwnerModeAndTimes() throws {
        defer { cleanUp() }
        let path = try dropSample(Array("dropper".utf8))
        let before = try #require(lstatOf(path))
        let vault = try QuarantineVault(directory: state + "/quarantine")
        let entry = try vault.quarantine(PathBytes(path), alertIDs: ["alert-1"], fileID: 9)

        #expect(lstatOf(path) == nil, "the original must be gone")
        #expect(entry.sha256 == sha256Hex(content))
        #expect(entry.state == .quarantined)
        #expect(entry.uid == 1234 && entry.gid == 5678 && entry.mode == 0o4755)
        #expect(entry.alertIds == ["alert-1"] && entry.fileId == 9)
        let sample = try #require(lstatOf(Array(entry.samplePath.utf8)))
        #expect(sample.st_mode & 0o7777 == 0, "quarantined copies are mode 0000")
        #expect(sample.st_dev != before.st_dev, "the copy left the tmpfs")
        #expect(readFile(Array(entry.samplePath.utf8)).map(sha256Hex) == entry.sha256)
        #expect(try #require(lstatOf(Array((state + "/quarantine").utf8))).st_mode & 0o777 == 0o700)
        #expect(try vault.entries().map(\.id) == [entry.id])

        let restored = try vault.restore(entry.id)
        #expect(restored.state == .restored)
        #expect(readFile(path) == content)
        let after = try #require(lstatOf(path))
        #expect(after.st_uid == 1234 && after.st_gid == 5678)
        #expect(after.st_mode & 0o7777 == 0o4755)
        #expect(after.st_mtim.tv_sec == before.st_mtim.tv_sec && after.st_mtim.tv_nsec == before.st_mtim.tv_nsec)
        #expect(lstatOf(Array(entry.samplePath.utf8)) == nil)
        #expect(throws: QuarantineError.self) { try vault.restore(entry.id) }
    }

    @Test func restoreNeverOverwritesAndCanGoElsewhere() throws {
        defer { cleanUp() }
        let path = try dropSample(Array("x".utf8))
        let vault = try QuarantineVault(directory: state + "/quarantine")
        let entry = try vault.quarantine(PathBytes(path))
        try writeFile(path, Data("someone else's file".utf8))
        do {
            _ = try vault.restore(entry.id)
            Issue.record("restore overwrote a file")
        } catch {
            #expect(error.kind == .exists)
        }
        #expect(readFile(path) == Data("someone else's file".utf8))
        let elsewhere = PathBytes(mount.child("restored-copy"))
        _ = try vault.restore(entry.id, to: elsewhere)
        #expect(readFile(elsewhere.bytes) == content)
    }

    @Test func aFileReplacedAfterTheCopyIsNeverUnlinked() throws {
        defer { cleanUp() }
        let path = try dropSample(Array("swap-me".utf8))
        let replacement = Data("the new file that must survive".utf8)
        let mountPath = mount.path
        let vault = try QuarantineVault(directory: state + "/quarantine") { step in
            guard step == .verified else { return }
            // Between hash and unlink: a new inode takes the name.
            try? writeFile(Array((mountPath + "/incoming").utf8), replacement)
            _ = rename(mountPath + "/incoming", mountPath + "/swap-me")
        }
        do {
            _ = try vault.quarantine(PathBytes(path))
            Issue.record("a replaced file was reported quarantined")
        } catch {
            #expect(error.kind == .replaced)
        }
        #expect(readFile(path) == replacement, "the replacement must be left in place")
        let entries = try vault.entries()
        #expect(entries.count == 1 && entries[0].state == .copyOnly)
        #expect(readFile(Array(entries[0].samplePath.utf8)).map(sha256Hex) == sha256Hex(content))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: mount.path).filter {
            $0.hasPrefix(".shmwarden")
        }
        #expect(leftovers.isEmpty)
    }

    @Test func aRecordedInodeThatIsNoLongerThereIsLeftAlone() throws {
        defer { cleanUp() }
        let path = try dropSample(Array("y".utf8))
        let status = try #require(lstatOf(path))
        let vault = try QuarantineVault(directory: state + "/quarantine")
        do {
            _ = try vault.quarantine(PathBytes(path), expecting: (UInt64(status.st_dev), UInt64(status.st_ino) + 1))
            Issue.record("quarantined a file that is not the recorded one")
        } catch {
            #expect(error.kind == .replaced)
        }
        #expect(readFile(path) == content)
        #expect(try vault.entries().isEmpty)
    }

    @Test func hostileNamesRoundTripByteForByte() throws {
        defer { cleanUp() }
        let name: [UInt8] = Array("a b'\"\n$(x)".utf8) + [0xff, 0xfe, UInt8(ascii: "z")]
        let path = try dropSample(name)
        let vault = try QuarantineVault(directory: state + "/quarantine")
        let entry = try vault.quarantine(PathBytes(path))
        #expect(entry.originalPathBytes == PathBytes(path))
        #expect(lstatOf(path) == nil)
        _ = try vault.restore(entry.id)
        #expect(readFile(path) == content)
    }

    @Test func symlinksAndDirectoriesAreRefused() throws {
        defer { cleanUp() }
        let target = try dropSample(Array("real".utf8))
        #expect(symlink(String(decoding: target, as: UTF8.self), mount.child("link")) == 0)
        let vault = try QuarantineVault(directory: state + "/quarantine")
        #expect(throws: QuarantineError.self) { try vault.quarantine(PathBytes(mount.child("link"))) }
        try FileManager.default.createDirectory(atPath: mount.child("dir"), withIntermediateDirectories: false)
        #expect(throws: QuarantineError.self) { try vault.quarantine(PathBytes(mount.child("dir"))) }
        #expect(throws: QuarantineError.self) { try vault.quarantine(PathBytes(mount.child("missing"))) }
        #expect(readFile(target) == content)
    }
}
