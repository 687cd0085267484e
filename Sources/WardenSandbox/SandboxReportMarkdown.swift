// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import WardenCore

/// Renders a sandbox run as Markdown (`shmwarden sandbox --markdown`, for a ticket or an
/// incident note): the same facts as the JSON form, in the order an analyst reads them. A
/// section the run has nothing for is left out, except the verdict. Paths, names and output
/// come from the sample: each goes into a code span, a table cell or a fenced block that shows
/// it as it is (`MarkdownText`); control characters are the caller's to escape for a terminal.
public enum SandboxReportMarkdown {
    /// `headingLevel`: of the run's title (its sections one deeper), 3 inside an alert's report.
    public static func render(_ report: SandboxReport, headingLevel: Int = 1) -> String {
        let code = MarkdownText.code
        let cell = MarkdownText.cell
        let runHeading = String(repeating: "#", count: headingLevel)
        let sectionHeading = runHeading + "#"
        var out: [String] = ["\(runHeading) Sandbox run \(code(report.id))", ""]
        out.append("| | |")
        out.append("|---|---|")
        out.append("| sha256 | \(code(report.sha256)) |")
        out.append("| command | \(code(report.argv.map(ShellQuote.quote).joined(separator: " "))) |")
        out.append("| uid and gid | \(report.uid) |")
        out.append("| ended | \(cell(ending(report))) |")
        out.append("| duration | \(report.durationMs) ms |")
        if report.i386Calls > 0 { out.append("| observed calls through i386's ABI | \(report.i386Calls) |") }

        out += ["", "\(sectionHeading) Verdict", ""]
        out += report.verdict.map { "- \($0)" }

        func table(_ title: String, _ header: [String], _ rows: [[String]], note: String? = nil) {
            guard !rows.isEmpty else { return }
            out += ["", "\(sectionHeading) \(title)", ""]
            if let note { out += [note, ""] }
            out.append("| " + header.joined(separator: " | ") + " |")
            out.append("|" + String(repeating: "---|", count: header.count))
            out += rows.map { "| " + $0.joined(separator: " | ") + " |" }
        }
        table(
            "Still running at the time limit", ["pid", "command line", "own session", "shown by ps as"],
            report.stillRunning.map {
                ["\($0.pid)", code($0.commandLine), $0.ownSession ? "yes (a daemon)" : "no", $0.name.map(code) ?? ""]
            })
        table(
            "Processes", ["call", "pid", "program", "arguments or name", "result"],
            report.processes.map { process in
                let words = process.commandLine ?? process.renamedTo.map { "PR_SET_NAME \(ShellQuote.quote($0))" }
                return [
                    process.syscall, "\(process.pid)", process.path.map(code) ?? "", words.map(code) ?? "",
                    process.result ?? "",
                ]
            })
        table(
            "Files", ["call", "path", "detail", "passed as", "result"],
            report.files.map {
                let passed =
                    $0.passedAs.map(code) ?? $0.directoryDescriptor.map { "relative to descriptor \($0)" } ?? ""
                return [$0.syscall, code($0.path), $0.detail.map(code) ?? "", passed, $0.result ?? ""]
            })
        table(
            "Network", ["call", "family", "address", "port", "type", "result", "sent"],
            report.network.map { attempt in
                let sent = attempt.sentBytes.map { bytes in
                    let answered = attempt.sinkAnswer.map { "; answered \($0)" } ?? ""
                    if let name = attempt.tlsServerName { return "\(bytes) bytes: TLS for \(code(name))" + answered }
                    return "\(bytes) bytes"
                        + (attempt.sent.map { $0.isEmpty ? "" : ": " + code(String($0.prefix(200))) } ?? "") + answered
                }
                return [
                    attempt.syscall, attempt.family,
                    (attempt.address.map(code) ?? "") + (attempt.hostName.map { " (\(code($0)))" } ?? ""),
                    attempt.port.map(String.init) ?? "", attempt.type ?? "", attempt.result ?? "", sent ?? "",
                ]
            },
            note: report.network.contains { ["AF_INET", "AF_INET6"].contains($0.family) && $0.result != nil }
                ? SandboxVerdict.standInNote : nil)
        table(
            "Host names looked up", ["request", "name", "answer", "pid"],
            report.lookups.map { [$0.request, code($0.name), $0.answer.map(code) ?? "", "\($0.pid)"] },
            note: (report.lookups.contains { $0.answer.map(SandboxNameBook.isGiven) == true }
                ? SandboxVerdict.nameNote : "Asked of the jail's name service; an empty answer is \"not found\".")
                + (report.lookups.contains { $0.request.hasPrefix(SandboxReport.NameLookup.dnsPrefix) }
                    ? " A DNS request was sent by the sample's own resolver: an empty answer there is no record, or the "
                        + "query was not delivered." : ""))
        table("Signals sent", ["call"], report.signals.map { [code($0)] })
        table(
            "Files left in /tmp and /dev/shm", ["path", "bytes", "sha256", "evidence copy"],
            report.written.map { [code($0.path), "\($0.size)", code($0.sha256), code($0.evidencePath)] },
            note: report.writtenTruncated ? "More were left; the first 100 are kept." : nil)
        table(
            "Observed calls", ["call", "count"],
            report.syscalls.sorted { $0.key < $1.key }.map { [$0.key, "\($0.value)"] })
        table(
            "Refused or killed calls", ["call", "count"],
            report.denied.sorted { $0.key < $1.key }.map { [$0.key, "\($0.value)"] })

        for (name, text, truncated) in [
            ("stdout", report.stdout, report.stdoutTruncated), ("stderr", report.stderr, report.stderrTruncated),
        ] where !text.isEmpty {
            out += [
                "",
                "\(sectionHeading) \(name)"
                    + (truncated
                        ? " (cut: the capture keeps the first \(SandboxRunner.Options().outputLimit) bytes)" : ""),
                "",
            ]
            out += MarkdownText.block(text, language: "text")
        }
        return out.joined(separator: "\n") + "\n"
    }

    /// How the sample's own process ended, in words.
    static func ending(_ report: SandboxReport) -> String {
        if let setupError = report.setupError { return "did not run: \(setupError)" }
        if let code = report.exit.code { return "exit code \(code)" + (report.timedOut ? " (time limit reached)" : "") }
        if let signal = report.exit.signal {
            return "signal \(signal)" + (report.exit.atTimeLimit ? " (killed at the time limit)" : "")
        }
        return report.timedOut ? "killed at the time limit" : "unknown"
    }
}
