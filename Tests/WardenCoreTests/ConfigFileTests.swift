// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Testing
import WardenCore

@Suite struct ConfigFileTests {
    @Test func readsEverySetting() throws {
        let text = """
            state-dir: /srv/shmwarden
            watch: [/data/scratch, /run/user]
            discover: false
            hash-size-cap: 512M
            max-pinned-files: 100
            listen: "[::1]:2804"
            unix-socket: /run/shmwarden.sock
            token-file: /etc/shmwarden/token
            body-limit: 2M
            policy: /etc/shmwarden/policies
            log-level: info
            log-format: journal
            retention: {max-age: 30d, evidence-budget: 10G}
            """
        let config = try ConfigFile.parse(text, file: "c.yaml").get()
        #expect(config.stateDirectory == "/srv/shmwarden")
        #expect(config.watch == ["/data/scratch", "/run/user"])
        #expect(config.discover == false && config.maxPinnedFiles == 100 && config.hashSizeCap == "512M")
        #expect(config.listen == "[::1]:2804" && config.logFormat == "journal")
        #expect(config.retention == RetentionSettings(maxAgeSeconds: 30 * 86_400, evidenceBudgetBytes: 10 << 30))
        #expect(try ConfigFile.parse("", file: "c.yaml").get() == ConfigFile())
    }

    @Test func everyErrorHasItsLine() {
        let text = """
            state-dir: relative/dir
            listen: everywhere
            hash-size-cap: big
            log-level: loud
            colour: red
            retention: {max-age: soon, evidence-budget: 0}
            """
        guard case .failure(let errors) = ConfigFile.parse(text, file: "c.yaml") else {
            Issue.record("accepted")
            return
        }
        #expect(
            errors.errors.map(\.description) == [
                "c.yaml:1:12: state-dir must be an absolute path, not 'relative/dir'",
                "c.yaml:2:9: listen must be HOST:PORT (e.g. 127.0.0.1:2804) or off, not 'everywhere'",
                "c.yaml:3:16: hash-size-cap 'big' is not a size (e.g. 4096, 512K, 256M, 1G)",
                "c.yaml:4:12: log-level must be one of trace, debug, info, notice, warning, error, critical, not 'loud'",
                "c.yaml:5:1: unknown key 'colour' (expected one of: state-dir, watch, discover, hash-size-cap, max-pinned-files, listen, unix-socket, token-file, body-limit, policy, log-level, log-format, retention, intake, storage, inotify-watch-share, exec-monitor, outputs, outbox, yara)",
                "c.yaml:6:22: max-age 'soon' is not an age like 30d, 12h or 3600s",
                "c.yaml:6:45: evidence-budget '0' is not a size like 10G",
            ])
    }

    @Test func theExecMonitorIsOnOffOrConfigured() throws {
        #expect(try ConfigFile.parse("exec-monitor: false\n", file: "c.yaml").get().execMonitor.enabled == false)
        let configured = try ConfigFile.parse(
            "exec-monitor: {enabled: true, interpreters: [sh, python3]}\n", file: "c.yaml"
        ).get()
        #expect(configured.execMonitor.enabled == true && configured.execMonitor.interpreters == ["sh", "python3"])
        for (text, reason) in [
            ("exec-monitor: maybe\n", "exec-monitor must be true, false, or a mapping"),
            ("exec-monitor: {interpreters: [/bin/sh]}\n", "lists program names"),
            ("exec-monitor: {speed: 1}\n", "unknown key 'speed' in exec-monitor"),
        ] {
            guard case .failure(let errors) = ConfigFile.parse(text, file: "c.yaml") else {
                Issue.record("accepted \(text)")
                continue
            }
            #expect(errors.errors.first?.description.contains(reason) == true, "\(errors)")
        }
    }

    @Test func agesAndSizes() {
        #expect(RetentionSettings.parseAge("12h") == 43_200)
        #expect(RetentionSettings.parseAge("3600") == 3600)
        #expect(RetentionSettings.parseAge("2w") == 1_209_600)
        #expect(RetentionSettings.parseAge("0d") == nil)
        #expect(RetentionSettings.parseAge("-1d") == nil)
        #expect(ByteSizeText.parse("512K") == 524_288)
        #expect(ByteSizeText.parse("99999999999G") == nil)
        #expect(HostPortText.parse("[::1]:80")! == ("::1", 80))
        #expect(HostPortText.parse(":80") == nil)
    }
}
