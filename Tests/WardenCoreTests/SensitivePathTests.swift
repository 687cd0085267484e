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
}
