// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Foundation
import Testing
import WardenCore

@Suite struct PathBytesTests {
    @Test func utf8PathsDisplayAsThemselves() {
        let path = PathBytes("/dev/shm/ünïcode file")
        #expect(path.isValidUTF8)
        #expect(path.displayString == "/dev/shm/ünïcode file")
    }

    @Test func invalidBytesAndControlCharactersAreEscaped() {
        let path = PathBytes(Array("/dev/shm/a".utf8) + [0xff, 0x0a] + Array("b".utf8) + [0xc3, 0xa9])
        #expect(!path.isValidUTF8)
        #expect(path.displayString == "/dev/shm/a\\xff\\x0abé")
        #expect(Data(base64Encoded: path.base64).map(Array.init) == path.bytes)
        #expect(PathBytes("/x/\nnew").displayString == "/x/\\x0anew")
    }

    @Test func appendingAndContainment() {
        #expect(PathBytes("/dev/shm").appending(Array("x".utf8)) == PathBytes("/dev/shm/x"))
        #expect(PathBytes("/").appending(Array("x".utf8)) == PathBytes("/x"))
        #expect(PathBytes("/dev/shm/x").isWithin(PathBytes("/dev/shm")))
        #expect(PathBytes("/dev/shm").isWithin(PathBytes("/dev/shm")))
        #expect(!PathBytes("/dev/shmem").isWithin(PathBytes("/dev/shm")))
        #expect(PathBytes("/anything").isWithin(PathBytes("/")))
    }

    @Test func recordJSONCarriesExactBytesWhenNotUTF8() throws {
        let bytes = Array("/dev/shm/".utf8) + [0xfe, 0x0a, 0x41]
        let record = FileRecord(
            path: PathBytes(bytes), mountPoint: PathBytes("/dev/shm"), fileType: .regular, device: 1, inode: 2,
            size: 3, mode: 0o100755, uid: 0, gid: 0, linkCount: 1,
            modified: Timestamp(nanosecondsSinceEpoch: 0), changed: Timestamp(nanosecondsSinceEpoch: 0),
            firstSeen: Timestamp(nanosecondsSinceEpoch: 1_700_000_000_123_456_789),
            lastSeen: Timestamp(nanosecondsSinceEpoch: 1_700_000_000_123_456_789),
            kind: .elf, reasons: [.execBit, .elf], hashStatus: .ok, sha256: String(repeating: "a", count: 64))
        let object = try #require(
            try JSONSerialization.jsonObject(with: JSONEncoder().encode(record)) as? [String: Any])
        #expect(object["pathBase64"] as? String == Data(bytes).base64EncodedString())
        #expect(object["firstSeen"] as? String == "2023-11-14T22:13:20.123456789Z")
        #expect(object["mode"] as? Int == 0o755)
        #expect(object["modeOctal"] as? String == "0755")
        #expect(object["kind"] as? String == "elf")
        #expect(object["state"] as? String == "present")
        #expect(object["executableReasons"] as? [String] == ["execBit", "elf"])
        #expect(object.keys.contains("evidencePath"))
    }
}

@Suite struct PathGlobTests {
    @Test(arguments: [
        ("/dev/shm/*", "/dev/shm/x", true),
        ("/dev/shm/*", "/dev/shm/a/x", false),
        ("/dev/shm/**", "/dev/shm/a/x", true),
        ("/dev/shm/?.sh", "/dev/shm/a.sh", true),
        ("/dev/shm/?.sh", "/dev/shm/ab.sh", false),
        ("/dev/shm/[a-c]*", "/dev/shm/beta", true),
        ("/dev/shm/[!a-c]*", "/dev/shm/beta", false),
        ("/dev/shm/\\*", "/dev/shm/*", true),
        ("/dev/shm/\\*", "/dev/shm/x", false),
        ("/dev/shm/[]x]", "/dev/shm/]", true),
        ("/dev/shm/[", "/dev/shm/[", true),
        ("**/payload", "/run/user/0/payload", true),
        ("/exact", "/exact", true),
        ("/exact", "/exactly", false),
        ("/dev/shm/a*b*c", "/dev/shm/aXbYc", true),
        ("/dev/shm/a*b*c", "/dev/shm/aXbY/c", false),
        ("/dev/shm/***", "/dev/shm/a/b", true),
        ("/a/**/b", "/a/b", false),
        ("/a/**/b", "/a/x/y/b", true),
        ("/a/**b", "/a/x/yb", true),
        ("*", "", true),
        ("", "", true),
        ("[z-a]", "b", false),
        ("/x\\", "/x\\", true),
    ])
    func glob(pattern: String, path: String, expected: Bool) {
        #expect(PathGlob(pattern).matches(PathBytes(path)) == expected)
    }

    /// A glob is matched while an exec waits, on a path its sender chose: no backtracking.
    /// Twenty `**` against a 4,000-byte path that almost matches would take longer than the
    /// universe's age with a backtracking matcher.
    @Test func manyStarsAgainstALongPathAnswerAtOnce() {
        let glob = PathGlob("/" + String(repeating: "**a", count: 20) + "b")
        let path = PathBytes("/" + String(repeating: "a/", count: 2000))
        let started = ContinuousClock.now
        #expect(!glob.matches(path))
        #expect(glob.matches(PathBytes("/" + String(repeating: "a/", count: 2000) + "ab")))
        #expect(ContinuousClock.now - started < .seconds(1))
    }

    @Test func matchesNonUTF8Bytes() {
        let path = PathBytes(Array("/dev/shm/".utf8) + [0xff, 0xfe])
        #expect(PathGlob("/dev/shm/*").matches(path))
        #expect(PathGlob("/dev/shm/??").matches(path))
    }
}

@Suite struct TimestampTests {
    @Test(
        arguments: [
            (0, "1970-01-01T00:00:00.000000000Z"),
            (1_700_000_000_000_000_001, "2023-11-14T22:13:20.000000001Z"),
            (951_782_400_000_000_000, "2000-02-29T00:00:00.000000000Z"),
            (-1, "1969-12-31T23:59:59.999999999Z"),
        ] as [(Int64, String)])
    func rfc3339(nanos: Int64, text: String) {
        #expect(Timestamp(nanosecondsSinceEpoch: nanos).rfc3339 == text)
    }

    @Test func agreesWithFoundation() {
        let formatter = ISO8601DateFormatter()
        for seconds: Int64 in [86_399, 1_000_000_000, 1_798_000_000, 4_102_444_800] {
            let ours = Timestamp(seconds: seconds, nanoseconds: 0).rfc3339
            let theirs = formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
            #expect(ours.replacingOccurrences(of: ".000000000", with: "") == theirs)
        }
    }
}

@Suite struct BlockingQueueTests {
    @Test func offerRefusesWhenFullAndTakeAllDrainsInOrder() {
        let queue = BlockingQueue<Int>(capacity: 3)
        #expect(queue.offer(1) && queue.offer(2) && queue.offer(3))
        #expect(!queue.offer(4))
        #expect(queue.takeAll(limit: 2) == [1, 2])
        #expect(queue.offer(5))
        #expect(queue.takeAll() == [3, 5])
        queue.close()
        #expect(!queue.offer(6))
        #expect(queue.takeAll() == [])
        #expect(queue.isClosedAndEmpty)
    }

    @Test func putWaitsForRoom() async {
        let queue = BlockingQueue<Int>(capacity: 1)
        queue.put(1)
        let producer = Task.detached { queue.put(2) }
        try? await Task.sleep(for: .milliseconds(50))
        #expect(queue.count == 1)
        #expect(queue.takeAll() == [1])
        _ = await producer.value
        #expect(queue.takeAll() == [2])
    }
}
