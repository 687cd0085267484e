// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

/// What Falco's own documentation and rules say fields, flags and tags mean: the only
/// interpretations a report makes.
public enum FalcoKnowledge {
    /// `evt.arg.flags` of an execve, as Falco's libs define them.
    public static let execveFlags: [String: String] = [
        "EXE_WRITABLE":
            "the executable file is writable by the user who ran it (a file permission, not a privilege level)",
        "EXE_UPPER_LAYER":
            "the executable is on the upper (writable) layer of an overlayfs: written or changed after the container started",
        "EXE_LOWER_LAYER": "the executable is on a lower (image) layer of an overlayfs",
        "EXE_FROM_MEMFD": "the executable is a memfd: it was run from memory, with no file on any mount",
    ]

    /// MITRE ATT&CK tactics by the `mitre_*` tags of Falco's rules.
    public static let tactics: [String: (id: String, name: String)] = [
        "mitre_initial_access": ("TA0001", "Initial Access"), "mitre_execution": ("TA0002", "Execution"),
        "mitre_persistence": ("TA0003", "Persistence"),
        "mitre_privilege_escalation": ("TA0004", "Privilege Escalation"),
        "mitre_defense_evasion": ("TA0005", "Defense Evasion"),
        "mitre_credential_access": ("TA0006", "Credential Access"),
        "mitre_discovery": ("TA0007", "Discovery"), "mitre_lateral_movement": ("TA0008", "Lateral Movement"),
        "mitre_collection": ("TA0009", "Collection"), "mitre_exfiltration": ("TA0010", "Exfiltration"),
        "mitre_command_and_control": ("TA0011", "Command and Control"), "mitre_impact": ("TA0040", "Impact"),
    ]

    /// ATT&CK ids that Falco's rules about dropped and fileless executables carry, by name.
    public static let attackNames: [String: String] = [
        "TA0001": "Initial Access", "TA0002": "Execution", "TA0003": "Persistence", "TA0004": "Privilege Escalation",
        "TA0005": "Defense Evasion", "TA0006": "Credential Access", "TA0007": "Discovery", "TA0008": "Lateral Movement",
        "TA0009": "Collection", "TA0010": "Exfiltration", "TA0011": "Command and Control", "TA0040": "Impact",
        "T1059": "Command and Scripting Interpreter", "T1059.004": "Command and Scripting Interpreter: Unix Shell",
        "T1620": "Reflective Code Loading", "T1105": "Ingress Tool Transfer",
        "T1036": "Masquerading", "T1036.005": "Masquerading: Match Legitimate Name or Location",
        "T1070": "Indicator Removal", "T1070.004": "Indicator Removal: File Deletion",
    ]

    /// The ATT&CK page for an id such as `T1059.004` or `TA0002`.
    public static func attackURL(_ id: String) -> String {
        if id.hasPrefix("TA") { return "https://attack.mitre.org/tactics/\(id)/" }
        return "https://attack.mitre.org/techniques/\(id.replacingAll(".", with: "/"))/"
    }

    /// Whether a tag is an ATT&CK id (`T1059`, `T1059.004`, `TA0003`).
    public static func isAttackID(_ tag: String) -> Bool {
        let body: Substring
        if tag.hasPrefix("TA") {
            body = tag.dropFirst(2)
        } else if tag.hasPrefix("T") {
            body = tag.dropFirst()
        } else {
            return false
        }
        let parts = body.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts[0].count == 4, parts[0].allSatisfy(\.isASCIIDigitCharacter) else {
            return false
        }
        return parts.count == 1 || (parts[1].count == 3 && parts[1].allSatisfy(\.isASCIIDigitCharacter))
    }

    /// The rules whose alerts are about memfd execution.
    public static func isMemfdRule(_ alert: FalcoAlert) -> Bool {
        alert.rule == "Fileless execution via memfd_create"
            || alert.field("evt.arg.flags")?.contains("EXE_FROM_MEMFD") == true
            || alert.field("proc.is_exe_from_memfd") == "true"
    }
}

extension Character {
    fileprivate var isASCIIDigitCharacter: Bool { isASCII && isNumber }
}
