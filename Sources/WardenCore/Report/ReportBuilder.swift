// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// Builds an alert's report from facts only: the alert's fields, the evidence, the audit rows
/// and the host's mounts. Where a fact is missing it says so instead of guessing.
public enum ReportBuilder {
    /// Falco fields shown first in the details, in this order; the rest follow by name.
    static let leadingFields = [
        "proc.exepath", "proc.exe", "proc.name", "proc.cmdline", "proc.args", "proc.pid", "proc.ppid", "proc.pname",
        "proc.pcmdline", "proc.cwd", "proc.exe_ino", "proc.is_exe_from_memfd", "proc.is_exe_upper_layer", "fd.name",
        "fd.ino", "evt.type", "evt.res", "evt.arg.flags", "user.name", "user.uid", "user.loginuid", "user.loginname",
        "group.gid", "group.name", "container.id", "container.name", "container.image.repository",
        "container.image.tag", "k8s.ns.name", "k8s.pod.name",
    ]

    /// Fields whose absence the report states (with what it costs).
    static let expectedFields: [(String, String)] = [
        ("proc.exepath", "the executable path the kernel resolved"),
        ("proc.cmdline", "the command line"),
        ("user.uid", "who ran it"),
        ("proc.pid", "the process id; kill-process needs it, and falco.yaml append_output can add it"),
        ("container.id", "whether it ran on the host or in a container"),
    ]

    public static func build(_ input: ReportInput) -> AlertReport {
        let alert = input.alert
        let identity = identity(alert)
        var unknowns = expectedFields.compactMap { field, what in
            known(alert, field) == nil ? "\(field) is not in the alert: \(what)." : nil
        }
        if alert.hostname == nil { unknowns.append("hostname is not in the alert: which machine this was.") }
        return AlertReport(
            alertId: input.alertID,
            generatedAt: input.generatedAt.rfc3339,
            summary: AlertReport.Summary(
                rule: alert.rule, priority: alert.priority.name, hostname: alert.hostname, time: alert.timeText,
                source: alert.source, receivedAt: input.receivedAt.rfc3339,
                sentence: sentence(input, identity: identity)),
            details: details(alert),
            flags: flags(alert),
            identity: identity,
            evidence: input.evidence.map(evidence),
            noEvidence: input.evidence.isEmpty ? noEvidenceText(input) : nil,
            actions: input.actions,
            sandbox: sandboxText(input),
            recommendations: recommendations(input),
            attack: attack(alert.tags),
            caveats: caveats(input),
            unknowns: unknowns)
    }

    static func sandboxText(_ input: ReportInput) -> String {
        guard !input.sandboxRuns.isEmpty else {
            return input.evidence.isEmpty
                ? "No sandbox run: there is no file evidence to run."
                : "No sandbox run exists for this sample (run one with `shmwarden sandbox` on its evidence copy)."
        }
        return input.sandboxRuns.map { run in
            "Run \(run.id) of sha256 \(run.sha256) (the whole report: `shmwarden sandbox --show \(run.id)`): "
                + run.verdict.joined(separator: " ")
        }.joined(separator: " ")
    }

    // MARK: Facts from the alert

    /// A field's text, unless it is absent, null or Falco's `<NA>`.
    static func known(_ alert: FalcoAlert, _ field: String) -> String? {
        guard let text = alert.field(field), text != "<NA>", !text.isEmpty else { return nil }
        return text
    }

    static func details(_ alert: FalcoAlert) -> [AlertReport.Field] {
        let leading = leadingFields.filter { alert.outputFields[$0] != nil }
        let rest = alert.outputFields.keys.filter { !leadingFields.contains($0) }.sorted()
        return (leading + rest).map {
            AlertReport.Field(name: $0, value: alert.outputFields[$0]?.description ?? "null")
        }
    }

    static func flags(_ alert: FalcoAlert) -> [AlertReport.Flag] {
        guard let text = known(alert, "evt.arg.flags") else { return [] }
        return text.split(separator: "|").map { part in
            let flag = String(part)
            return AlertReport.Flag(
                flag: flag,
                meaning: FalcoKnowledge.execveFlags[flag] ?? "an execve flag shmwarden has no documented meaning for")
        }
    }

    static func identity(_ alert: FalcoAlert) -> AlertReport.Identity {
        let exe = known(alert, "proc.exe")
        let exepath = known(alert, "proc.exepath")
        let exeNote: String
        switch (exe, exepath) {
        case let (exe?, exepath?) where exe == exepath:
            exeNote = "proc.exe (argv[0]) and proc.exepath (the path the kernel resolved) agree."
        case let (exe?, exepath?):
            exeNote =
                "proc.exe is argv[0], which whoever starts a process chooses freely (`\(exe)`); the executable "
                + "the kernel ran is proc.exepath (`\(exepath)`)."
        case (nil, _?):
            exeNote = "proc.exepath is the path the kernel resolved; proc.exe (argv[0]) is not in the alert."
        case (_?, nil):
            exeNote =
                "Only proc.exe (argv[0]) is in the alert: it is chosen by whoever starts the process and does "
                + "not prove which file ran."
        case (nil, nil):
            exeNote = "Neither proc.exe nor proc.exepath is in the alert."
        }
        let loginuid = known(alert, "user.loginuid")
        let loginuidMeaning = loginuid.map { value -> String in
            value == "-1" || value == "4294967295"
                ? "no login session: the process does not descend from a user's login (a service, cron, or a container's init)"
                : "the process descends from the login session of uid \(value)"
        }
        let container = known(alert, "container.id")
        return AlertReport.Identity(
            user: known(alert, "user.name"), uid: known(alert, "user.uid"), loginuid: loginuid,
            loginuidMeaning: loginuidMeaning, exe: exe, exepath: exepath, exeNote: exeNote,
            location: container.map { $0 == "host" ? "host" : "container \($0)" }
                ?? "unknown (container.id is not in the alert)",
            containerName: known(alert, "container.name"), containerImage: known(alert, "container.image.repository"))
    }

    static func sentence(_ input: ReportInput, identity: AlertReport.Identity) -> String {
        let alert = input.alert
        var process: [String] = []
        if let exepath = identity.exepath { process.append("executable \(exepath)") }
        if let cmdline = known(alert, "proc.cmdline") { process.append("command line `\(cmdline)`") }
        var text = "Falco's rule \"\(alert.rule)\" (\(alert.priority.name)) fired"
        if let name = known(alert, "proc.name") {
            text += " for process \(name)" + (process.isEmpty ? "" : " (\(process.joined(separator: ", ")))")
        } else if !process.isEmpty {
            text += " for a process (\(process.joined(separator: ", ")))"
        }
        if let user = identity.user {
            text += ", run by user \(user)" + (identity.uid.map { " (uid \($0))" } ?? "")
        } else if let uid = identity.uid {
            text += ", run by uid \(uid)"
        }
        if identity.location.hasPrefix("container ") { text += " in \(identity.location)" }
        if let hostname = alert.hostname {
            text += " on host \(hostname)"
        } else if identity.location == "host" {
            text += " on the host"
        }
        text += " at \(alert.timeText)."
        if let first = input.evidence.first {
            let sha = first.file.sha256.map { "sha256 \($0)" } ?? "no hash (\(first.file.hashStatus.rawValue))"
            if let capture = first.file.capture {
                text +=
                    " shmwarden took \(capture.what) from running process \(capture.pid) through "
                    + "\(capture.source) (\(sha), named \(first.file.path.displayString))"
            } else {
                text +=
                    " shmwarden recorded the file \(first.file.path.displayString) (\(sha), now \(first.file.state.rawValue))"
            }
            text += input.evidence.count > 1 ? " and \(input.evidence.count - 1) more." : "."
        } else {
            text += " shmwarden holds no file for it: \(noEvidenceText(input))"
        }
        return text
    }

    static func pidText(_ input: ReportInput) -> String { known(input.alert, "proc.pid") ?? "PID" }

    static func noEvidenceText(_ input: ReportInput) -> String {
        switch input.noEvidenceReason {
        case .memfdExecution?:
            "it ran from a memfd, whose bytes only the running process holds (/proc/\(pidText(input))/exe). "
                + "shmwarden did not look at the process when the alert arrived (the alert has no proc.pid, its "
                + "sender is not authenticated, or the exec monitor is off), and nothing it took at an exec matched."
        case .memfdProcessExited?:
            "it ran from a memfd, whose bytes only the running process holds, and process \(pidText(input)) had "
                + "exited when the alert arrived; nothing the exec monitor took at its exec matched (the monitor is "
                + "off, or the process was gone before the monitor read it)."
        case .memfdNotCaptured?:
            "it ran from a memfd, and process \(pidText(input)) was running when the alert arrived, but its bytes "
                + "could not be taken (the agent's log says why: a read error or a full store queue)."
        case .pathOutsideTmpfs?:
            "the paths in the alert are not on any tmpfs shmwarden watches."
        case .noPathInAlert?:
            "the alert carries no file path to match."
        case .neverSeen?:
            "its path is on a watched tmpfs, but no file was recorded there at the alert's time."
        case .containerShmNotFound?:
            "it names a path in its container's /dev/shm, a tmpfs of the container's own, and no mount of that "
                + "container's /dev/shm was found on this host (shmwarden looks for the runtimes' shm mounts: "
                + "Docker's containers/<id>/mounts/shm, containerd's sandboxes/<id>/shm, CRI-O's userdata/shm); "
                + "the host's /dev/shm, which only a container run with --ipc=host shares, had no such file."
        case .internalEvent?:
            "it is a Falco internal event, not about a file."
        case nil:
            "no file matched."
        }
    }

    // MARK: Evidence

    static func evidence(_ item: ReportEvidence) -> AlertReport.Evidence {
        let file = item.file
        return AlertReport.Evidence(
            fileId: file.id, path: file.path.jsonText, pathBase64: file.path.isValidUTF8 ? nil : file.path.base64,
            sha256: file.sha256, size: file.size, kind: file.kind.rawValue, description: describe(file),
            mountPoint: file.mountPoint?.displayString, firstSeen: file.firstSeen.rfc3339, state: file.state.rawValue,
            deletedAt: file.deletedAt?.rfc3339, evidencePath: file.evidencePath, quarantineId: item.quarantineID,
            matchedBy: item.matchedBy, confidence: (item.confidence * 100).rounded() / 100, capture: file.capture,
            yara: file.yara, yaraFacts: file.yara.map(yaraFacts))
    }

    /// What a YARA scan found, as facts: which rule of which file matched, what the rule's own
    /// metadata says (quoted, never restated as a finding), and where its strings were.
    public static func yaraFacts(_ verdict: YaraVerdict) -> [String] {
        let scope =
            verdict.status == .truncated
            ? " (only its first \(verdict.scannedBytes) of \(verdict.size) bytes were scanned: yara.max-file-size)" : ""
        guard verdict.isAnswer else {
            return [
                "The YARA scan (rule set \(verdict.ruleset)) gave no answer: \(verdict.status.rawValue)"
                    + (verdict.detail.map { ", \($0)" } ?? "") + "."
            ]
        }
        guard !verdict.matches.isEmpty else {
            return ["No rule of the YARA rule set \(verdict.ruleset) matched its bytes\(scope)."]
        }
        return verdict.matches.map { match in
            var text = "Matched YARA rule \(match.rule) from \(match.namespace)"
            if !match.tags.isEmpty { text += " (tags \(match.tags.joined(separator: ", ")))" }
            text += scope
            let quoted = match.metadata.filter { ["description", "author", "reference", "date"].contains($0.key) }
            if !quoted.isEmpty {
                text +=
                    "; the rule's metadata says " + quoted.map { "\($0.key): \"\($0.value)\"" }.joined(separator: ", ")
            }
            let strings = match.strings.map { string in
                "\(string.identifier) at offset \(string.offsets.map { "0x" + String($0, radix: 16) }.joined(separator: ", "))"
                    + (string.count > string.offsets.count ? " (\(string.count) matches)" : "")
            }
            if !strings.isEmpty { text += "; its strings matched: " + strings.joined(separator: "; ") }
            return text + "."
        }
    }

    /// What the content is, from the classifier's facts.
    static func describe(_ file: FileRecord) -> String {
        if let elf = file.elf {
            let type = elf.type == "shared" ? "shared object (ET_DYN: a PIE executable or a library)" : elf.type
            var parts = ["ELF \(elf.bits)-bit \(elf.endianness)-endian \(elf.machine) \(type)"]
            parts.append(
                elf.isStatic ? "statically linked" : "dynamically linked (interpreter \(elf.interpreter ?? "?"))")
            parts.append(elf.isStripped ? "stripped" : "not stripped")
            return parts.joined(separator: ", ")
        }
        if let script = file.script {
            return "script for \(script.interpreter)" + (script.argument.map { " (argument \($0))" } ?? "")
        }
        return "\(file.kind.rawValue) content, mode \(file.permissionsOctal)"
    }

    // MARK: Recommendations

    static func recommendations(_ input: ReportInput) -> [AlertReport.Recommendation] {
        var out: [AlertReport.Recommendation] = []
        var mountsDone = Set<PathBytes>()
        for item in input.evidence {
            guard let mountPoint = item.file.mountPoint, mountsDone.insert(mountPoint).inserted else { continue }
            guard let mount = item.mount else {
                out.append(
                    .init(
                        kind: "noexec-remount", title: "Mount \(mountPoint) is gone",
                        text:
                            "The file was found on \(mountPoint), which is no longer mounted; there is nothing to remount.",
                        commands: [], yaml: nil))
                continue
            }
            let advice = NoexecAdvice(mount)
            guard advice.remountIsCommand else { continue }
            var text = "The file was on tmpfs \(advice.mountPoint), mounted \(advice.options.joined(separator: ",")). "
            text +=
                advice.noexec
                ? "It is noexec already; the remaining flags (nosuid, nodev) close the rest. "
                : "With noexec the kernel refuses to execute any file there (execve fails with EACCES). "
            if let fstab = advice.fstabLine {
                text += "To keep it after a reboot, make the /etc/fstab line for \(advice.mountPoint): `\(fstab)`. "
            } else {
                text += advice.persistence + " "
            }
            text += "Risks: " + advice.risks.joined(separator: " ")
            out.append(
                .init(
                    kind: "noexec-remount", title: "Remount \(advice.mountPoint) noexec,nosuid,nodev", text: text,
                    commands: [advice.remountCommand], yaml: nil))
        }
        if FalcoKnowledge.isMemfdRule(input.alert) || input.noEvidenceReason?.isMemfd == true {
            let memfd = MemfdAdvice(current: input.memfdNoexec)
            out.append(
                .init(
                    kind: "memfd-noexec", title: "Restrict memfd execution (vm.memfd_noexec)",
                    text: memfd.explanation + " Persistent: " + memfd.persistentFile + ".",
                    commands: input.memfdNoexec == nil ? [] : ["sysctl -w vm.memfd_noexec=1", memfd.command], yaml: nil)
            )
        }
        for item in input.evidence {
            let file = item.file
            let quoted = ShellQuote.quote(file.path)
            switch file.state {
            case .present:
                out.append(
                    .init(
                        kind: "quarantine", title: "Quarantine \(file.path.displayString)",
                        text: "The file is still in place. Quarantine copies it to the state directory, verifies the "
                            + "copy's SHA-256, and removes the original only if it is still the same inode.",
                        commands: ["shmwarden quarantine \(quoted)"], yaml: nil))
            case .quarantined:
                let id = item.quarantineID
                out.append(
                    .init(
                        kind: "restore", title: "Restore only if verified legitimate",
                        text: "The file is in the quarantine\(id.map { " as \($0)" } ?? ""). Restore puts it back with "
                            + "its owner and mode after checking its hash, and never overwrites.",
                        commands: id.map { ["shmwarden quarantine restore \($0)"] } ?? ["shmwarden quarantine list"],
                        yaml: nil))
            case .deleted:
                break
            }
            if let evidencePath = file.evidencePath, let sha = file.sha256 {
                out.append(
                    .init(
                        kind: "evidence", title: "Examine the evidence copy",
                        text: "shmwarden kept the file's bytes (sha256 \(sha)) at \(evidencePath), mode 0400; it is "
                            + "named by its hash, so `sha256sum` verifies it.",
                        commands: ["sha256sum \(ShellQuote.quote(evidencePath))"], yaml: nil))
            }
        }
        if let exception = falcoException(input) { out.append(exception) }
        return out
    }

    /// An exception for this alert's executable, as valid Falco rules YAML.
    static func falcoException(_ input: ReportInput) -> AlertReport.Recommendation? {
        let alert = input.alert
        guard !alert.isInternal else { return nil }
        var fields: [String] = []
        var values: [String] = []
        if let image = known(alert, "container.image.repository") {
            fields.append("container.image.repository")
            values.append(image)
        }
        if let exepath = known(alert, "proc.exepath"), exepath.hasPrefix("/") {
            fields.append("proc.exepath")
            values.append(exepath)
        } else if let name = known(alert, "proc.name") {
            fields.append("proc.name")
            values.append(name)
        }
        guard fields.last != "container.image.repository", !fields.isEmpty else { return nil }
        let name =
            input.evidence.first?.file.sha256.map { "shmwarden_verified_\($0.prefix(12))" } ?? "shmwarden_verified"
        let yaml = FalcoRuleYAML.exception(rule: alert.rule, name: name, fields: fields, values: values)
        var text =
            "Only after you have verified this executable is legitimate: this tells Falco not to alert for "
            + fields.joined(separator: " + ") + " in this rule. Falco cannot block, so it silences the alert and "
            + "nothing else. Put it in a rules file loaded after falco_rules.yaml (e.g. /etc/falco/rules.d/)."
        if fields.contains("proc.name") {
            text += " proc.name is chosen by the process itself, so this exception is weak; prefer a path."
        }
        return .init(
            kind: "falco-exception", title: "Falco rule exception (if legitimate)", text: text, commands: [], yaml: yaml
        )
    }

    // MARK: ATT&CK and caveats

    /// One entry per ATT&CK id, in tag order, with every tag that names it.
    static func attack(_ tags: [String]) -> [AlertReport.AttackEntry] {
        var entries: [AlertReport.AttackEntry] = []
        for tag in tags {
            let id: String
            if FalcoKnowledge.isAttackID(tag) {
                id = tag
            } else if let tactic = FalcoKnowledge.tactics[tag] {
                id = tactic.id
            } else {
                continue
            }
            if let index = entries.firstIndex(where: { $0.id == id }) {
                entries[index].tags.append(tag)
            } else {
                entries.append(
                    .init(id: id, name: FalcoKnowledge.attackNames[id], url: FalcoKnowledge.attackURL(id), tags: [tag]))
            }
        }
        return entries
    }

    static func caveats(_ input: ReportInput) -> [String] {
        var out: [String] = []
        if input.eventDropNearby {
            out.append(
                "Falco reported dropped syscall events within \(EventDropWindow.seconds) s of this alert on this "
                    + "host: what Falco saw around it, and so this correlation, may be incomplete.")
        }
        let overlayFlags = flags(input.alert).map(\.flag).filter { $0 == "EXE_UPPER_LAYER" || $0 == "EXE_LOWER_LAYER" }
        if !overlayFlags.isEmpty, let mountPoint = input.evidence.lazy.compactMap(\.file.mountPoint).first {
            out.append(
                "Falco flagged the executable \(overlayFlags.joined(separator: ", ")) (an overlayfs layer), but the file "
                    + "matched here is on tmpfs \(mountPoint.displayString), which carries neither flag: "
                    + "the flag describes the executable Falco saw, which may not be this file.")
        }
        for item in input.evidence where item.confidence < 0.6 {
            out.append(
                "\(item.file.path.displayString) matched by \(item.matchedBy) with confidence "
                    + "\((item.confidence * 100).rounded() / 100): it may not be the file the alert is about.")
        }
        let (difference, overflow) = input.receivedAt.nanosecondsSinceEpoch.subtractingReportingOverflow(
            input.alert.time.nanosecondsSinceEpoch)
        let delay = overflow ? Int64.max / 1_000_000_000 : difference / 1_000_000_000
        if delay > 10 {
            out.append("The alert reached shmwarden \(delay) s after the event it reports.")
        }
        return out
    }
}

/// How close (either side) a Falco event-drop report must be to an alert to cast doubt on it.
public enum EventDropWindow {
    public static let seconds: Int64 = 10
    public static let nanoseconds: Int64 = seconds * 1_000_000_000
}
