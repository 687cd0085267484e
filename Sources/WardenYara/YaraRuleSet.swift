// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Crypto
import Glibc
import Synchronization
import WardenCore
import WardenLinux

/// A compiled rule set and what it was compiled from.
public struct YaraRuleSet: Sendable {
    public var rules: YaraRules
    /// The files, in the order compiled (each one's namespace is its path).
    public var files: [String]
    /// The first 16 hex digits of a SHA-256 over every file's path and bytes: a verdict names
    /// the set that gave it.
    public var fingerprint: String
    public var warnings: [YaraCompileMessage]

    /// Rules files larger than this are refused (community sets run to a few MiB).
    public static let fileSizeLimit = 64 << 20

    /// The rule files `paths` name: each file itself, and each directory's `*.yar` and `*.yara`
    /// files (not recursively), in name order.
    public static func files(in paths: [String]) -> Result<[String], YaraCompileErrors> {
        var files: [String] = []
        var errors: [YaraCompileMessage] = []
        for path in paths {
            guard let status = try? sys_statFollowing(Array(path.utf8)) else {
                errors.append(.init(file: path, line: 0, message: "no such file or directory", isWarning: false))
                continue
            }
            guard FileType(mode: status.mode) == .directory else {
                files.append(path)
                continue
            }
            guard let fd = try? sys_open(Array(path.utf8), flags: O_RDONLY | O_DIRECTORY, followingSymlinks: true),
                let entries = try? sys_readDirectory(fd)
            else {
                errors.append(.init(file: path, line: 0, message: "cannot list the directory", isWarning: false))
                continue
            }
            sys_close(fd)
            let names = entries.map { String(decoding: $0.name, as: UTF8.self) }
                .filter { $0.hasSuffix(".yar") || $0.hasSuffix(".yara") }.sorted()
            if names.isEmpty {
                errors.append(.init(file: path, line: 0, message: "holds no *.yar or *.yara file", isWarning: false))
            }
            let directory = path.hasSuffix("/") ? String(path.dropLast()) : path
            files += names.map { directory + "/" + $0 }
        }
        return errors.isEmpty ? .success(files) : .failure(YaraCompileErrors(errors))
    }

    /// Reads and compiles the rule files `paths` name; every error of every file when one fails.
    public static func load(_ paths: [String]) -> Result<YaraRuleSet, YaraCompileErrors> {
        let files: [String]
        switch Self.files(in: paths) {
        case .success(let found): files = found
        case .failure(let errors): return .failure(errors)
        }
        var sources: [(name: String, text: [UInt8])] = []
        var errors: [YaraCompileMessage] = []
        var digest = SHA256()
        for file in files {
            guard let text = try? sys_readFile(Array(file.utf8), followingSymlinks: true) else {
                errors.append(.init(file: file, line: 0, message: "cannot read the file", isWarning: false))
                continue
            }
            guard text.count <= fileSizeLimit else {
                errors.append(
                    .init(file: file, line: 0, message: "larger than \(fileSizeLimit >> 20) MiB", isWarning: false))
                continue
            }
            digest.update(data: Array(file.utf8) + [0] + text + [0])
            sources.append((file, text))
        }
        guard errors.isEmpty else { return .failure(YaraCompileErrors(errors)) }
        guard !sources.isEmpty else {
            return .failure(YaraCompileErrors([.init(file: "-", line: 0, message: "no rule files", isWarning: false)]))
        }
        return YaraRules.compile(sources).map { compiled, warnings in
            YaraRuleSet(
                rules: compiled, files: files, fingerprint: String(DescriptorDigest.hex(digest.finalize()).prefix(16)),
                warnings: warnings)
        }
    }
}

/// The rule set in force, shared by every scanner and swapped whole on a reload (a set that
/// does not compile leaves the last good one in place).
public final class SharedYaraRules: Sendable {
    private let state: Mutex<YaraRuleSet?>
    private let counter = Atomic<Int>(0)
    public let paths: [String]

    public init(_ set: YaraRuleSet?, paths: [String]) {
        state = Mutex(set)
        self.paths = paths
    }

    public var current: YaraRuleSet? { state.withLock { $0 } }

    /// Bumped by every replacement.
    public var generation: Int { counter.load(ordering: .acquiring) }

    /// Recompiles from `paths`: the new set on success (now in force), else its errors (the
    /// last good set stays).
    public func reload() -> Result<YaraRuleSet, YaraCompileErrors> {
        let result = YaraRuleSet.load(paths)
        if case .success(let set) = result {
            state.withLock { $0 = set }
            counter.add(1, ordering: .releasing)
        }
        return result
    }
}
