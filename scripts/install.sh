#!/usr/bin/env bash
# Installs shmwarden on this host (Debian/Ubuntu, as root):
#   - Debian packages it needs (libseccomp-dev, libsqlite3-dev, libyara-dev, pkg-config), a release build
#   - /usr/local/bin/shmwarden
#   - /etc/shmwarden/shmwarden.yaml (kept if present) and /etc/shmwarden/policies
#     (Policies/default.yaml, monitor mode, kept if present; the enforce example beside it)
#   - /etc/shmwarden/yara/shmwarden.yar, shmwarden's own YARA rules (replaced on upgrade)
#   - /var/lib/shmwarden (0700), the systemd unit, enabled and started
#   - bash completion
# Usage: sudo scripts/install.sh [--no-start] | --uninstall
# --uninstall removes the binary, the unit, the completion and /etc/shmwarden, and KEEPS
# /var/lib/shmwarden (the evidence, the quarantine and the database): remove it yourself when
# you no longer need them.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh must run as root (sudo scripts/install.sh)" >&2
    exit 1
fi

unit=/etc/systemd/system/shmwarden.service
have_systemd() { [ -d /run/systemd/system ]; }

if [ "${1:-}" = "--uninstall" ]; then
    if have_systemd; then
        systemctl disable --now shmwarden.service 2>/dev/null || true
    fi
    rm -f "$unit" /usr/local/bin/shmwarden /usr/share/bash-completion/completions/shmwarden
    rm -rf /usr/local/share/doc/shmwarden
    rm -rf /etc/shmwarden
    have_systemd && systemctl daemon-reload || true
    echo "shmwarden removed. Kept: /var/lib/shmwarden (evidence, quarantine, database)."
    exit 0
fi

start=yes
[ "${1:-}" = "--no-start" ] && start=no

scripts/install-deps
echo "building (release; a few minutes on a small machine)…" >&2
# The Swift runtime linked in (see scripts/build-release): a short command's time is mostly
# process start.
scripts/build-release
# Without the DWARF; the symbol table stays, so crash backtraces keep their names.
install -D -m 0755 .build/release/shmwarden /usr/local/bin/shmwarden
strip --strip-debug /usr/local/bin/shmwarden
install -D -m 0644 README.md /usr/local/share/doc/shmwarden/README.md

install -d -m 0755 /etc/shmwarden /etc/shmwarden/policies
[ -e /etc/shmwarden/shmwarden.yaml ] || install -m 0644 dist/config/shmwarden.yaml /etc/shmwarden/shmwarden.yaml
[ -e /etc/shmwarden/policies/default.yaml ] || install -m 0644 Policies/default.yaml /etc/shmwarden/policies/default.yaml
install -m 0644 Policies/enforce-example.yaml /etc/shmwarden/policies/enforce-example.yaml
install -d -m 0755 /etc/shmwarden/yara
install -m 0644 Rules/yara/shmwarden.yar /etc/shmwarden/yara/shmwarden.yar
install -d -m 0700 /var/lib/shmwarden
# The intake's CA, server certificate and client certificates for Falco and Falcosidekick
# (kept when the CA exists; `shmwarden certs init` again rotates the rest, then reload).
if [ ! -e /etc/shmwarden/tls/server.crt ]; then
    /usr/local/bin/shmwarden certs init --directory /etc/shmwarden/tls
fi
/usr/local/bin/shmwarden config check /etc/shmwarden/shmwarden.yaml >/dev/null
/usr/local/bin/shmwarden policy check /etc/shmwarden/policies >/dev/null

install -d /usr/share/bash-completion/completions
/usr/local/bin/shmwarden --generate-completion-script bash > /usr/share/bash-completion/completions/shmwarden

if have_systemd; then
    install -m 0644 dist/systemd/shmwarden.service "$unit"
    systemctl daemon-reload
    if [ "$start" = yes ]; then
        # restart, not `enable --now`: on an upgrade the running agent must pick up the new
        # binary and unit (`--now` leaves an active service as it is).
        systemctl enable shmwarden.service
        systemctl restart shmwarden.service
        systemctl --no-pager --lines=5 status shmwarden.service || true
    else
        systemctl enable shmwarden.service
    fi
else
    echo "no systemd here: start it with  /usr/local/bin/shmwarden run --config /etc/shmwarden/shmwarden.yaml" >&2
fi
echo "installed. Falco: put the http_output block printed by 'shmwarden certs init' in falco.yaml (see README, 'Connect Falco')."
