// shmwarden — Linux host agent for executables dropped on tmpfs.
// SPDX-License-Identifier: Apache-2.0

import Testing
import WardenCore

@Suite struct SensitivePathTests {
    @Test func credentialsPersistenceAndRuntimeSockets() {
        let expected: [(String, SensitivePath?)] = [
            ("/etc/shadow", .credentials),
            ("/etc/gshadow", .credentials),
            ("/root/.ssh/id_ed25519", .credentials),
            ("/home/alice/.ssh/id_rsa", .credentials),
            ("/home/alice/.aws/credentials", .credentials),
            ("/root/.kube/config", .credentials),
            ("/home/bob/.config/gcloud/credentials.db", .credentials),
            ("/var/run/secrets/kubernetes.io/serviceaccount/token", .credentials),
            ("/etc/kubernetes/admin.conf", .credentials),
            ("/etc/ssh/ssh_host_ed25519_key", .credentials),
            ("/root/.bash_history", .credentials),
            ("/root/.ssh/authorized_keys", .persistence),
            ("/home/alice/.ssh/authorized_keys2", .persistence),
            ("/etc/ld.so.preload", .persistence),
            ("/etc/cron.d/x", .persistence),
            ("/var/spool/cron/crontabs/root", .persistence),
            ("/etc/systemd/system/x.service", .persistence),
            ("/root/.bashrc", .persistence),
            ("/home/alice/.config/autostart/x.desktop", .persistence),
            ("/etc/sudoers", .persistence),
            ("/var/run/docker.sock", .containerRuntime),
            ("/run/containerd/containerd.sock", .containerRuntime),
            // Ordinary paths, and look-alikes that are not what they seem.
            ("/etc/passwd", nil),
            ("/etc/ssh/ssh_host_ed25519_key.pub", nil),
            ("/etc/ssh/sshd_config", nil),
            ("/tmp/.ssh/id_rsa", nil),
            ("/home/alice", nil),
            ("/home/alice/.bashrc.d/x", nil),
            ("/etc/cron.dx", nil),
            ("/tmp/docker.sock", nil),
            ("shadow", nil),
            ("/", nil),
            ("", nil),
        ]
        for (path, category) in expected {
            #expect(SensitivePath.classify(path) == category, "\(path)")
        }
    }

    /// Which paths relative to a directory descriptor the sandbox observer resolves on a read:
    /// the names of what `classify` finds, and nothing a directory walk meets at every step.
    @Test func relativePathsThatMayNameSensitiveFiles() {
        let expected: [(String, Bool)] = [
            ("shadow", true), ("gshadow-", true), ("id_ed25519", true), ("token", true), ("config", true),
            ("ssh_host_rsa_key", true), ("server.key", true), ("private.pem", true), (".ssh/id_rsa", true),
            ("etc/cron.d/job", true), ("authorized_keys2", true), ("docker.sock", true), ("admin.conf", true),
            ("hostname", false), ("doc", false), ("ca-certificates/mozilla/x.crt", false), ("passwd", false),
            (".key", false), ("README", false), ("keys", false), ("shadowed", false), ("", false),
        ]
        for (path, may) in expected {
            #expect(SensitivePath.mayBeNamedBy(relativePath: Array(path.utf8)) == may, "\(path)")
        }
    }
}
