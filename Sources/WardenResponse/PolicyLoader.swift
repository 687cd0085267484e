// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

@preconcurrency import Glibc
import WardenCore
import WardenLinux

/// Reads a policy file, or every `*.yaml`/`*.yml` of a directory in name order (files named
/// `*-example.yaml` are examples and are not loaded), and validates it whole.
public enum PolicyLoader {
    public static func load(_ path: String) -> Result<Policy, PolicyErrors> {
        let files: [String]
        do {
            files = try policyFiles(at: path)
        } catch {
            return .failure(PolicyErrors([PolicyError(file: path, line: 0, reason: error.description)]))
        }
        guard !files.isEmpty else {
            return .failure(
                PolicyErrors([PolicyError(file: path, line: 0, reason: "no *.yaml or *.yml policy files here")]))
        }
        var documents: [PolicyDocument] = []
        var errors: [PolicyError] = []
        for file in files {
            let text: String
            do {
                text = String(decoding: try sys_readFile(Array(file.utf8)), as: UTF8.self)
            } catch {
                errors.append(PolicyError(file: file, line: 0, reason: "cannot read: \(error)"))
                continue
            }
            switch PolicyParser.parse(text, file: file) {
            case .success(let document): documents.append(document)
            case .failure(let problems): errors += problems.errors
            }
        }
        guard errors.isEmpty else { return .failure(PolicyErrors(errors)) }
        return PolicyParser.merge(documents)
    }

    /// The files `load` reads for `path`.
    public static func policyFiles(at path: String) throws(SystemCallError) -> [String] {
        let status = try sys_lstat(Array(path.utf8))
        guard status.mode & UInt32(S_IFMT) == UInt32(S_IFDIR) else { return [path] }
        let fd = try sys_open(Array(path.utf8), flags: O_RDONLY | O_DIRECTORY)
        defer { sys_close(fd) }
        let base = path.hasSuffix("/") ? String(path.dropLast()) : path
        return try sys_readDirectory(fd).map { String(decoding: $0.name, as: UTF8.self) }
            .filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) && !$0.hasSuffix("-example.yaml") }
            .filter { !$0.hasPrefix(".") }
            .sorted()
            .map { "\(base)/\($0)" }
    }
}
