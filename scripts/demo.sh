#!/usr/bin/env bash
# The five-minute tour (root): a private tmpfs under /dev/shm, a dropper that writes, chmods,
# runs and deletes an ELF and a script, the Falco alerts the real "Execution from /dev/shm" rule
# would send for them, and what shmwarden made of it all: the records, the correlation, the
# monitor-mode plan, the exec guard's records, an analysis report, and a sandbox run of the
# deleted ELF's evidence copy.
# Nothing outside its own tmpfs and state directory is touched; both are removed at the end.
# Usage: sudo scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "the demo mounts a tmpfs and runs the agent: run it as root (sudo scripts/demo.sh)" >&2
    exit 1
fi
scripts/install-deps curl >&2
[ -x .build/release/shmwarden ] || scripts/build-release >&2
bin=$PWD/.build/release/shmwarden

drop=/dev/shm/shmwarden-demo
state=$(mktemp -d /var/tmp/shmwarden-demo-state.XXXXXX)
port=$((20000 + RANDOM % 20000))
mkdir -p "$drop"
mount -t tmpfs -o size=16m,mode=1777 tmpfs "$drop"
agent=
cleanup() {
    [ -n "$agent" ] && kill -INT "$agent" 2>/dev/null && wait "$agent" 2>/dev/null || true
    umount "$drop" 2>/dev/null || true
    rmdir "$drop" 2>/dev/null || true
    rm -rf "$state"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. start the agent on $drop (monitor-mode policy Policies/default.yaml, exec guard in monitor mode)"
# The intake takes alerts over mutual TLS, as Falco's http_output sends them with mtls: true:
# a CA, the agent's certificate and a client certificate for "Falco" (here, curl).
tls="$state/tls"
"$bin" certs init --directory "$tls" --listen "127.0.0.1:$port" >/dev/null
falco=(--cacert "$tls/ca.crt" --cert "$tls/clients/falco.crt" --key "$tls/clients/falco.key")
"$bin" run --no-discover --watch "$drop" --listen "127.0.0.1:$port" --policy Policies/default.yaml \
    --tls-directory "$tls" --state-dir "$state" 2>"$state.log" &
agent=$!
for _ in $(seq 100); do
    curl -sf "${falco[@]}" "https://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
done
echo "shmwarden pid $agent, Falco intake on https://127.0.0.1:$port/falco (mutual TLS)"

step "2. a dropper: write, chmod, run and delete an ELF and a script"
cp /bin/true "$drop/.kworker"
chmod 755 "$drop/.kworker"
"$drop/.kworker" --fast & elf_pid=$!
wait $elf_pid
printf '#!/bin/sh\necho "stage two"\n' > "$drop/stage2.sh"
chmod 755 "$drop/stage2.sh"
"$drop/stage2.sh" & script_pid=$!
wait $script_pid
rm -f "$drop/.kworker" "$drop/stage2.sh"
ls -la "$drop"
sleep 0.5

step "3. the alerts Falco's \"Execution from /dev/shm\" rule sends for them (json_output, http_output)"
alert() { # exepath pid name cmdline
    local now
    now=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
    cat <<JSON
{"hostname":"$(hostname)","output":"$(date -u +%H:%M:%S.%N): Warning File execution detected from /dev/shm | evt_res=SUCCESS file=$1 proc_cwd=/root/ user=root user_uid=0 process=$3 proc_exepath=$1 command=$4 exe_flags=EXE_WRITABLE","priority":"Warning","rule":"Execution from /dev/shm","source":"syscall","tags":["T1059.004","container","host","maturity_stable","mitre_execution"],"time":"$now","output_fields":{"container.id":"host","evt.arg.flags":"EXE_WRITABLE","evt.res":"SUCCESS","evt.type":"execve","fd.name":"$1","group.gid":0,"group.name":"root","proc.cmdline":"$4","proc.cwd":"/root/","proc.exepath":"$1","proc.name":"$3","proc.pcmdline":"demo.sh","proc.pid":$2,"proc.pname":"bash","proc.tty":0,"user.loginname":"root","user.loginuid":0,"user.name":"root","user.uid":0}}
JSON
}
first=$(alert "$drop/.kworker" $elf_pid .kworker ".kworker --fast" | curl -s "${falco[@]}" -H 'Content-Type: application/json' --data-binary @- "https://127.0.0.1:$port/falco")
echo "$first"
alert "$drop/stage2.sh" $script_pid stage2.sh "sh $drop/stage2.sh" | curl -s "${falco[@]}" -H 'Content-Type: application/json' --data-binary @- "https://127.0.0.1:$port/falco"
echo
sleep 0.5
id=$(printf '%s' "$first" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')

step "4. the records: both files, deleted, hashed, with evidence copies"
"$bin" files --state-dir "$state"

step "5. the alerts, their correlation with the files, and the monitor-mode plan"
"$bin" alerts --state-dir "$state"

step "6. the exec guard's records (monitor mode: allowed, and what enforce would have said)"
"$bin" execs --state-dir "$state"

step "7. the analysis report of the first alert (also GET /alerts/$id/report)"
"$bin" report "$id" --state-dir "$state"

step "8. run the ELF's evidence copy in the sandbox (the dropper deleted the original)"
evidence=$("$bin" files --state-dir "$state" --json --path "$drop/.kworker" | sed -n 's/.*"evidencePath" : "\([^"]*\)".*/\1/p' | head -1)
"$bin" sandbox "$evidence" --state-dir "$state" -- --fast

step "done: the agent stops, the tmpfs and the demo state are removed"
