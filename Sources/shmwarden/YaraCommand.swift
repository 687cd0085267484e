// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import ArgumentParser
import Foundation
import Synchronization
import SystemPackage
import WardenCore
import WardenDaemon
import WardenLinux
import WardenSensors
import WardenYara

struct YaraCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "yara", abstract: "Check YARA rules the way the agent compiles and runs them.",
        subcommands: [Test.self])

    struct Test: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "test",
            abstract: "Compile RULES (a file or a directory of *.yar) and scan FILE with them.",
            discussion: """
                Compiles as `run` does (each file in a namespace of its path; include refused) and \
                scans FILE as the agent scans a capture: read by pread up to --max-file-size, with \
                YARA's filesize the file's own. Prints every matching rule with its tags, metadata \
                and string offsets. Exit 0 when a rule matched, 1 when none did, 2 when the rules \
                do not compile (each error as FILE:LINE: reason) or FILE cannot be read.
                """)

        @Argument(help: "A rules file, or a directory of *.yar / *.yara files.")
        var rules: String

        @Argument(help: "The file to scan.")
        var file: String

        @Option(help: "Bytes scanned at most (K, M, G suffixes; default 64M).")
        var maxFileSize: String = "64M"

        @Option(help: "Seconds the scan may take (default 10).")
        var timeout: Int = 10

        @Flag(help: "Print the verdict as JSON.")
        var json = false

        func validate() throws {
            guard let size = ByteSizeText.parse(maxFileSize), size > 0 else {
                throw ValidationError("--max-file-size: '\(maxFileSize)' is not a size")
            }
            guard (1...600).contains(timeout) else { throw ValidationError("--timeout must be 1 to 600 seconds") }
        }

        func run() throws {
            var settings = YaraSettings(rules: [AgentConfiguration.absolute(rules)])
            settings.maxFileSize = ByteSizeText.parse(maxFileSize) ?? settings.maxFileSize
            settings.timeoutSeconds = timeout
            let set = try YaraCLI.compile(settings)
            for warning in set.warnings { FileHandle.standardError.write(Data("\(warning)\n".utf8)) }
            let verdict = try YaraCLI.scan(file, rules: set, settings: settings)
            if json {
                print(try JSONOutput.encode(verdict))
            } else {
                print(TerminalText.escaped("\(file): \(set.rules.ruleCount) rule(s)", keepingLineBreaks: false))
                YaraText.printVerdict(verdict, indent: "  ")
            }
            if verdict.matches.isEmpty { throw ExitCode(1) }
        }
    }
}

/// What `yara test` and `scan --yara` share.
enum YaraCLI {
    static func compile(_ settings: YaraSettings) throws -> YaraRuleSet {
        switch YaraRuleSet.load(settings.rules) {
        case .success(let set): return set
        case .failure(let errors): throw UsageError(message: "YARA rules do not compile:\n\(errors.description)")
        }
    }

    /// Scans the file at `path` (symlinks not followed) as the agent scans a capture.
    static func scan(_ path: String, rules: YaraRuleSet, settings: YaraSettings) throws -> YaraVerdict {
        let fd: SystemPackage.FileDescriptor
        do {
            fd = try sys_open(Array(path.utf8), flags: O_RDONLY | O_CLOEXEC | O_NONBLOCK, followingSymlinks: true)
        } catch {
            throw UsageError(message: "cannot open '\(path)': \(error)")
        }
        defer { sys_close(fd) }
        guard let status = try? sys_fstat(fd), FileType(mode: status.mode) == .regular else {
            throw UsageError(message: "'\(path)' is not a regular file")
        }
        let scanner = YaraFileScanner(rules: SharedYaraRules(rules, paths: settings.rules), settings: settings)
        guard let verdict = scanner.scan(fd, expectedSHA256: nil, now: SensorService.wallClock) else {
            throw UsageError(message: "no rules loaded")
        }
        return verdict
    }
}

/// `scan --yara PATH…`: every regular file below the paths, scanned on a few threads.
enum YaraPathScan {
    struct Finding: Encodable {
        var path: String
        var verdict: YaraVerdict
    }

    static func run(_ command: ScanCommand, file: ConfigFile) throws {
        var settings = file.yara
        if let rules = command.rules { settings.rules = [AgentConfiguration.absolute(rules)] }
        guard !settings.rules.isEmpty else {
            throw UsageError(message: "no YARA rules: set yara.rules in the configuration, or pass --rules")
        }
        let set = try YaraCLI.compile(settings)
        var files: [String] = []
        for path in command.paths { collect(AgentConfiguration.absolute(path), into: &files, top: true) }
        let shared = SharedYaraRules(set, paths: settings.rules)
        let threads = min(command.threads ?? max(1, ProcessInfo.processInfo.activeProcessorCount), max(1, files.count))
        let asCaptured = command.asCaptured
        let results = Mutex<[(Int, YaraVerdict)]>([])
        let next = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: threads) { [files, settings] _ in
            let scanner = YaraFileScanner(rules: shared, settings: settings)
            var mine: [(Int, YaraVerdict)] = []
            while true {
                let index = next.add(1, ordering: .relaxed).oldValue
                guard index < files.count else { break }
                guard
                    let fd = try? sys_open(
                        Array(files[index].utf8), flags: O_RDONLY | O_CLOEXEC | O_NONBLOCK, followingSymlinks: true)
                else { continue }
                let verdict =
                    asCaptured
                    ? scanner.scan(fd, expectedSHA256: nil, now: SensorService.wallClock)
                    : scanner.scanMapped(fd, now: SensorService.wallClock)
                if let verdict {
                    mine.append((index, verdict))
                }
                sys_close(fd)
            }
            results.withLock { $0 += mine }
        }
        let verdicts = results.withLock { $0 }.sorted { $0.0 < $1.0 }
        let shown = verdicts.filter { !$0.1.matches.isEmpty || !$0.1.isAnswer }
        if command.json {
            print(try JSONOutput.encode(shown.map { Finding(path: files[$0.0], verdict: $0.1) }))
            return
        }
        for (index, verdict) in shown {
            print(TerminalText.escaped(files[index], keepingLineBreaks: false))
            YaraText.printVerdict(verdict, indent: "  ")
        }
        let matched = verdicts.filter { !$0.1.matches.isEmpty }.count
        let unanswered = verdicts.filter { !$0.1.isAnswer }.count
        print(
            "scanned \(verdicts.count) of \(files.count) file(s) with \(set.rules.ruleCount) rule(s) (set \(set.fingerprint)): "
                + "\(matched) matched, \(unanswered) without an answer")
    }

    /// Regular files at or below `path`, no symlink followed below the paths given (`top`).
    static func collect(_ path: String, into files: inout [String], top: Bool = false) {
        guard let status = try? (top ? sys_statFollowing(Array(path.utf8)) : sys_lstat(Array(path.utf8))) else {
            return
        }
        switch FileType(mode: status.mode) {
        case .regular: files.append(path)
        case .directory:
            guard let fd = try? sys_open(Array(path.utf8), flags: O_RDONLY | O_DIRECTORY, followingSymlinks: top),
                let entries = try? sys_readDirectory(fd)
            else { return }
            sys_close(fd)
            let base = path.hasSuffix("/") ? path : path + "/"
            for entry in entries.sorted(by: { $0.name.lexicographicallyPrecedes($1.name) }) {
                let name = String(decoding: entry.name, as: UTF8.self)
                if name == "." || name == ".." { continue }
                collect(base + name, into: &files)
            }
        default: return
        }
    }
}
