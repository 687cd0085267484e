// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// Renders an `AlertReport` as Markdown: the same content as the JSON form, for people.
public enum ReportMarkdown {
    /// `sandboxRuns`: the sample's stored sandbox runs, already rendered as Markdown (their
    /// headings from level 3), placed after the sandbox line so that the report holds them whole.
    public static func render(_ report: AlertReport, sandboxRuns: [String] = []) -> String {
        var out: [String] = []
        let summary = report.summary
        out.append("# \(summary.rule) — \(summary.priority)")
        out.append("")
        out.append(summary.sentence)
        out.append("")
        out.append("| | |")
        out.append("|---|---|")
        out.append("| alert id | `\(MarkdownText.cell(report.alertId))` |")
        out.append("| host | \(MarkdownText.cell(summary.hostname ?? "not in the alert")) |")
        out.append("| time (Falco) | \(summary.time) |")
        out.append("| received | \(summary.receivedAt) |")
        out.append("| source | \(MarkdownText.cell(summary.source ?? "not in the alert")) |")
        out.append("| report generated | \(report.generatedAt) |")

        out.append("")
        out.append("## Alert details")
        out.append("")
        if report.details.isEmpty {
            out.append("The alert has no output fields.")
        } else {
            out.append("| Falco field | value |")
            out.append("|---|---|")
            for field in report.details { out.append("| `\(field.name)` | \(MarkdownText.code(field.value)) |") }
        }

        out.append("")
        out.append("## Who, what, where")
        out.append("")
        let identity = report.identity
        out.append(
            "- Where: \(identity.location)"
                + (identity.containerName.map { ", container name \($0)" } ?? "")
                + (identity.containerImage.map { ", image \($0)" } ?? "") + ".")
        out.append("- User: \(identity.user ?? "not in the alert") (uid \(identity.uid ?? "not in the alert")).")
        if let loginuid = identity.loginuid {
            out.append("- user.loginuid \(loginuid): \(identity.loginuidMeaning ?? "").")
        } else {
            out.append("- user.loginuid: not in the alert.")
        }
        out.append("- \(identity.exeNote)")
        if !report.flags.isEmpty {
            out.append("")
            out.append("Execve flags (`evt.arg.flags`):")
            out.append("")
            for flag in report.flags { out.append("- `\(flag.flag)`: \(flag.meaning).") }
        }

        out.append("")
        out.append("## Evidence")
        out.append("")
        if let none = report.noEvidence {
            out.append("No file evidence: \(none)")
            out.append("")
        }
        for item in report.evidence {
            out.append("### \(MarkdownText.code(item.path))")
            out.append("")
            if let base64 = item.pathBase64 { out.append("- exact path bytes (base64): `\(base64)`") }
            out.append("- sha256: \(item.sha256.map { "`\($0)`" } ?? "not hashed")")
            out.append("- \(item.size) bytes, \(item.description)")
            out.append(
                "- mount: \(item.mountPoint ?? (item.capture != nil ? "none (read from a running process)" : "unknown"))"
            )
            out.append(
                "- first seen \(item.firstSeen); state **\(item.state)**"
                    + (item.deletedAt.map { " (since \($0))" } ?? ""))
            out.append("- evidence copy: \(item.evidencePath.map { "`\($0)`" } ?? "none kept")")
            if let id = item.quarantineId { out.append("- quarantine id: `\(id)`") }
            if let capture = item.capture {
                out.append(
                    "- taken from running process \(capture.pid): \(capture.what), read through "
                        + MarkdownText.code(capture.source))
                out.append(
                    "- process: executable \(MarkdownText.code(capture.executable.displayString)), command line "
                        + MarkdownText.code(capture.commandLine.map(ShellQuote.quote).joined(separator: " "))
                        + (capture.ppid.map { ", parent pid \($0)" } ?? "")
                        + (capture.parentExecutable.map { " (\(MarkdownText.code($0.displayString)))" } ?? "")
                        + (capture.uid.map { ", uid \($0)" } ?? "")
                        + (capture.started.map { ", started \($0.rfc3339)" } ?? "")
                        + (capture.containerID.map { ", container \(MarkdownText.code($0))" } ?? ""))
                if let benign = capture.benign { out.append("- known benign: \(MarkdownText.cell(benign))") }
            }
            for fact in item.yaraFacts ?? [] { out.append("- " + MarkdownText.cell(fact)) }
            out.append("- matched by \(item.matchedBy), confidence \(item.confidence)")
            out.append("")
        }

        out.append("## Actions")
        out.append("")
        if report.actions.isEmpty {
            out.append("No policy action was recorded for this alert.")
        } else {
            out.append("| time | rule | action | mode | outcome | detail |")
            out.append("|---|---|---|---|---|---|")
            for action in report.actions {
                out.append(
                    "| \(action.time) | \(MarkdownText.cell(action.rule)) | \(action.action) | \(action.mode) | \(action.outcome) | "
                        + "\(MarkdownText.cell(action.detail)) |")
            }
        }
        out.append("")
        out.append("Sandbox: \(report.sandbox)")
        for run in sandboxRuns {
            out.append("")
            out.append(run.hasSuffix("\n") ? String(run.dropLast()) : run)
        }

        out.append("")
        out.append("## Recommendations")
        out.append("")
        if report.recommendations.isEmpty { out.append("None from the facts at hand.") }
        for recommendation in report.recommendations {
            out.append("### \(recommendation.title)")
            out.append("")
            out.append(recommendation.text)
            if !recommendation.commands.isEmpty {
                out.append("")
                out.append("```sh")
                out += recommendation.commands
                out.append("```")
            }
            if let yaml = recommendation.yaml {
                out.append("")
                out.append("```yaml")
                out.append(yaml.hasSuffix("\n") ? String(yaml.dropLast()) : yaml)
                out.append("```")
            }
            out.append("")
        }

        out.append("## MITRE ATT&CK (from the rule's tags)")
        out.append("")
        if report.attack.isEmpty { out.append("The rule carries no ATT&CK tags.") }
        for entry in report.attack {
            out.append(
                "- [\(entry.id)](\(entry.url))" + (entry.name.map { " \($0)" } ?? "")
                    + " (tag \(entry.tags.map { "`\($0)`" }.joined(separator: ", ")))")
        }

        out.append("")
        out.append("## Caveats")
        out.append("")
        if report.caveats.isEmpty && report.unknowns.isEmpty { out.append("None.") }
        for caveat in report.caveats { out.append("- \(caveat)") }
        for unknown in report.unknowns { out.append("- \(unknown)") }
        return out.joined(separator: "\n") + "\n"
    }
}
