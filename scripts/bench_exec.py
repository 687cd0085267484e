"""Exec monitor benchmark: capture rate by process lifetime, and exec cost. See scripts/bench-exec."""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

from bench_guard import mount_tmpfs, spawn_many, stop_agent, unmount


def start_agent(binary, mount, state, monitor):
    os.makedirs(state, exist_ok=True)
    log_path = os.path.join(state, "agent.log")
    arguments = [binary, "run", "--no-discover", "--watch", mount, "--no-listen", "--state-dir",
                 os.path.join(state, "db"), "--log-level", "info"]
    if not monitor:
        arguments.append("--no-exec-monitor")
    agent = subprocess.Popen(arguments, stderr=open(log_path, "w"), stdout=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        with open(log_path) as f:
            if "shmwarden running" in f.read():
                return agent
        time.sleep(0.05)
    agent.kill()
    raise SystemExit("the agent did not start; see " + log_path)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_from_memfd(program_bytes, marker, arguments):
    """Runs a copy of `program_bytes` (made unique by `marker`) from a memfd, to its end."""
    fd = os.memfd_create("bench-payload", 0)
    os.write(fd, program_bytes + marker)
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(f"/proc/self/fd/{fd}", ["bench-payload"] + arguments)
        finally:
            os._exit(127)
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise SystemExit(f"the memfd program failed (status {status})")


def captured_shas(binary, state):
    out = subprocess.run([binary, "files", "--json", "--state-dir", os.path.join(state, "db")],
                         check=True, capture_output=True, text=True).stdout
    return {r.get("sha256") for r in json.loads(out) if (r.get("capture") or {}).get("kind") == "memfd"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cost-only", action="store_true", help="skip the capture rates")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    per_lifetime = 30 if args.quick else 100
    rounds, per_round = (2, 1000) if args.quick else (10, 1000)

    import hashlib
    true_bytes = open(os.path.realpath("/bin/true"), "rb").read()
    sleep_bytes = open(os.path.realpath("/bin/sleep"), "rb").read()
    mount = mount_tmpfs("shmwarden-bench-exec-")
    state = tempfile.mkdtemp(prefix="shmwarden-bench-exec-state-", dir="/var/tmp")
    results = {"capture": {}, "cost": {}}
    try:
        # 1. Capture rate by lifetime.
        agent = start_agent(binary, mount, state, monitor=True) if not args.cost_only else None
        expected = {}
        try:
            if agent is None:
                raise StopIteration
            for lifetime in (0, 1, 10, 100):
                shas = set()
                for i in range(per_lifetime):
                    marker = f"\n{lifetime}-{i}-{os.getpid()}\n".encode()
                    if lifetime == 0:
                        run_from_memfd(true_bytes, marker, [])
                        shas.add(hashlib.sha256(true_bytes + marker).hexdigest())
                    else:
                        run_from_memfd(sleep_bytes, marker, [f"{lifetime / 1000:.3f}"])
                        shas.add(hashlib.sha256(sleep_bytes + marker).hexdigest())
                expected[lifetime] = shas
            time.sleep(2)
            taken = captured_shas(binary, state)
        except StopIteration:
            taken = set()
        finally:
            if agent is not None:
                stop_agent(agent)
        for lifetime, shas in expected.items():
            results["capture"][f"{lifetime}ms"] = {
                "run": len(shas), "captured": len(shas & taken),
                "rate": round(len(shas & taken) / len(shas), 3)}

        # 2. Cost of the monitor per exec: alternating rounds, monitor off then on.
        times = {False: [], True: []}
        agent_cpu = {False: [], True: []}
        true_path = os.path.realpath("/bin/true")
        for _ in range(rounds):
            for monitor in (False, True):
                shutil.rmtree(state, ignore_errors=True)
                agent = start_agent(binary, mount, state, monitor)
                try:
                    time.sleep(0.5)
                    before = cpu_seconds(agent.pid)
                    times[monitor].append(spawn_many(true_path, per_round))
                    time.sleep(0.2)
                    agent_cpu[monitor].append(cpu_seconds(agent.pid) - before)
                finally:
                    stop_agent(agent)
        off, on = sorted(times[False])[rounds // 2], sorted(times[True])[rounds // 2]
        # Each on round against the off round just before it: the machine's drift cancels.
        paired = sorted(t_on / t_off for t_off, t_on in zip(times[False], times[True]))
        results["cost"] = {
            "execs_per_round": per_round, "rounds": rounds,
            "paired_ratio_median": round(paired[rounds // 2], 3),
            "paired_ratio_range": [round(paired[0], 3), round(paired[-1], 3)],
            "seconds_monitor_off_median": round(off, 4), "seconds_monitor_on_median": round(on, 4),
            "ratio_on_to_off": round(on / off, 3),
            "agent_cpu_microseconds_per_exec_on": round(sum(agent_cpu[True]) / (rounds * per_round) * 1e6, 1),
            "agent_cpu_microseconds_per_exec_off": round(sum(agent_cpu[False]) / (rounds * per_round) * 1e6, 1),
        }
    finally:
        unmount(mount)
        shutil.rmtree(state, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
