"""Exec guard benchmark: exec overhead and decision latency. See scripts/bench-guard."""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def mount_tmpfs(prefix):
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", path], check=True)
    return path


def unmount(path):
    subprocess.run(["umount", "-l", path], check=False)
    shutil.rmtree(path, ignore_errors=True)


def spawn_many(binary, count):
    """Seconds to posix_spawn and reap `binary` `count` times, one after another."""
    env = {}
    start = time.perf_counter()
    for _ in range(count):
        pid = os.posix_spawn(binary, [binary], env)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise SystemExit(f"{binary} failed to run (status {status}): is it allowed?")
    return time.perf_counter() - start


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, int(round(p / 100 * (len(ordered) - 1)))))
    return ordered[index]


def start_agent(binary, mount, policy_text, state):
    policy = os.path.join(state, "policy.yaml")
    os.makedirs(state, exist_ok=True)
    with open(policy, "w") as f:
        f.write(policy_text)
    log = open(os.path.join(state, "agent.log"), "w")
    agent = subprocess.Popen(
        [binary, "run", "--no-discover", "--watch", mount, "--no-listen", "--policy", policy,
         "--state-dir", os.path.join(state, "db")],
        stderr=log, stdout=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        with open(os.path.join(state, "agent.log")) as f:
            if "exec guard" in f.read():
                return agent
        time.sleep(0.05)
    agent.kill()
    raise SystemExit("the agent did not start its guard; see " + os.path.join(state, "agent.log"))


def stop_agent(agent):
    agent.terminate()
    try:
        agent.wait(timeout=30)
    except subprocess.TimeoutExpired:
        agent.kill()


def exec_records(binary, state):
    out = subprocess.run([binary, "execs", "--json", "--state-dir", os.path.join(state, "db")],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


ATTACKER = r"""
import os, sys, time
mount, stop, payload = sys.argv[1], sys.argv[2], open(sys.argv[3], "rb").read()
i = 0
while not os.path.exists(stop):
    i += 1
    path = os.path.join(mount, f"grow-{os.getpid()}-{i}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755)
    os.write(fd, payload + b"\0" * (32 << 20))
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(path, [path])
        finally:
            os._exit(127)  # ETXTBSY: it is open for writing; the guard saw the exec all the same
    time.sleep(0.005)
    os.ftruncate(fd, 1 << 40)
    os.waitpid(pid, 0)
    os.close(fd)
    os.unlink(path)
"""


def first_sight_decisions(binary, guarded, state, true_bytes, count, tag):
    """Monitor mode, a new binary per exec: the decision times (us) of those execs, and every
    record of the run (an attacker's included)."""
    paths = []
    for i in range(count):
        path = os.path.join(guarded, f"{tag}-{i}")
        with open(path, "wb") as f:
            f.write(true_bytes + i.to_bytes(4, "little") + tag.encode())
        os.chmod(path, 0o755)
        paths.append(path)
    time.sleep(1.0)  # let the sensor record the drops first
    for path in paths:
        spawn_many(path, 1)
    time.sleep(0.5)
    records = exec_records(binary, state)
    return [r["decisionMicroseconds"] for r in records if not r["cached"] and f"/{tag}-" in r["path"]], records


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    rounds, per_round = (5, 200) if args.quick else (10, 500)
    first_sight = 100 if args.quick else 300

    with open("/bin/true", "rb") as f:
        true_bytes = f.read()
    sha = hashlib.sha256(true_bytes).hexdigest()
    guarded = mount_tmpfs("shmwarden-bench-guarded-")
    plain = mount_tmpfs("shmwarden-bench-plain-")
    state = tempfile.mkdtemp(prefix="shmwarden-bench-guard-state-", dir="/var/tmp")
    results = {}
    try:
        for directory in (guarded, plain):
            with open(os.path.join(directory, "true"), "wb") as f:
                f.write(true_bytes)
            os.chmod(os.path.join(directory, "true"), 0o755)

        # 1. Exec overhead, enforce mode, two ways of allowing the same file:
        #    by its hash: after the first exec the kernel stops holding it (an ignore mark until
        #    the file changes); the execs are still recorded, from the exec notification;
        #    by a path glob: held every time (a name is no reason to skip the check), so each
        #    exec pays the permission round trip with the hash from the cache.
        def overhead(policy_text):
            shutil.rmtree(state, ignore_errors=True)
            agent = start_agent(binary, guarded, policy_text, state)
            try:
                spawn_many(os.path.join(guarded, "true"), 20)  # warm both paths and the cache
                spawn_many(os.path.join(plain, "true"), 20)
                guarded_times, plain_times = [], []
                for _ in range(rounds):  # interleaved, so drift hits both alike
                    guarded_times.append(spawn_many(os.path.join(guarded, "true"), per_round) / per_round)
                    plain_times.append(spawn_many(os.path.join(plain, "true"), per_round) / per_round)
                time.sleep(0.5)
                records = exec_records(binary, state)
            finally:
                stop_agent(agent)
            g, p = percentile(guarded_times, 50), percentile(plain_times, 50)
            return {"guarded_us": g * 1e6, "unguarded_us": p * 1e6, "ratio": g / p, "execs": rounds * per_round,
                    "recorded": len(records), "not_held": sum(1 for r in records if not r["held"])}, records

        results["exec"], _ = overhead(f"mode: monitor\nguard: {{mode: enforce}}\nallowlist: {{sha256: [{sha}]}}\n")
        results["exec_held"], records = overhead(
            f"mode: monitor\nguard: {{mode: enforce}}\nallowlist: {{paths: ['{guarded}/true']}}\n")
        cached = [r["decisionMicroseconds"] for r in records if r["cached"] and r["held"]]
        results["cached_decision_us"] = {"p50": percentile(cached, 50), "p99": percentile(cached, 99),
                                         "max": max(cached, default=float("nan")), "count": len(cached)}

        # 2. First sight: monitor mode, a new binary (new hash) per exec; then the same while
        #    another user keeps writing 32 MiB executables, exec'ing them and growing them to a
        #    terabyte (sparse) while the guard hashes them. Same agent, same run.
        shutil.rmtree(state, ignore_errors=True)
        agent = start_agent(binary, guarded, "mode: monitor\nguard: {mode: monitor}\n", state)
        stop_file = os.path.join(state, "stop-attacker")
        try:
            first, _ = first_sight_decisions(binary, guarded, state, true_bytes, first_sight, "new")
            attacker_script = os.path.join(state, "attacker.py")
            with open(attacker_script, "w") as f:
                f.write(ATTACKER)
            os.chmod(state, 0o755)
            os.chmod(attacker_script, 0o644)
            attacker = subprocess.Popen(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, attacker_script,
                 guarded, stop_file, "/bin/true"])
            time.sleep(1.0)
            under_attack, records = first_sight_decisions(binary, guarded, state, true_bytes, first_sight, "busy")
            open(stop_file, "w").close()
            attacker.wait(timeout=60)
            attacks = [r for r in exec_records(binary, state) if "/grow-" in r["path"]]
        finally:
            stop_agent(agent)
        deadline_us = 100_000
        all_decisions = [r["decisionMicroseconds"] for r in records] + [r["decisionMicroseconds"] for r in attacks]
        results["first_sight_under_attack_us"] = {
            "p50": percentile(under_attack, 50), "p99": percentile(under_attack, 99), "count": len(under_attack),
            "attacker_execs": len(attacks), "over_deadline": sum(1 for d in all_decisions if d > deadline_us),
            "attacker_deadline_answers": sum(1 for r in attacks if "deadline" in r["reason"]),
            "max_us": max(all_decisions, default=0)}
        hash_times = []
        for _ in range(200):
            start = time.perf_counter()
            hashlib.sha256(true_bytes).hexdigest()
            hash_times.append((time.perf_counter() - start) * 1e6)
        results["first_sight_decision_us"] = {"p50": percentile(first, 50), "p99": percentile(first, 99),
                                              "count": len(first)}
        results["hash_same_bytes_us"] = {"p50": percentile(hash_times, 50), "bytes": len(true_bytes),
                                         "tool": "python hashlib (OpenSSL)"}
    finally:
        unmount(guarded)
        unmount(plain)
        shutil.rmtree(state, ignore_errors=True)

    e = results["exec"]
    held = results["exec_held"]
    c = results["cached_decision_us"]
    f = results["first_sight_decision_us"]
    h = results["hash_same_bytes_us"]
    print(f"exec of /bin/true copy allowed by its hash: guarded {e['guarded_us']:.0f} us, unguarded {e['unguarded_us']:.0f} us "
          f"-> {e['ratio']:.3f}x ({e['execs']} execs each, median of rounds; {e['recorded']} exec records, "
          f"{e['not_held']} of them not held by the kernel)")
    print(f"  allowed by a path glob (held every time): guarded {held['guarded_us']:.0f} us, unguarded "
          f"{held['unguarded_us']:.0f} us -> {held['ratio']:.3f}x ({held['recorded']} exec records)")
    print(f"cached decision (held execs, path glob): p50 {c['p50']:.1f} us, p99 {c['p99']:.1f} us, max {c['max']:.1f} us ({c['count']} execs)")
    print(f"first-sight decision (hash from the descriptor): p50 {f['p50']:.1f} us, p99 {f['p99']:.1f} us "
          f"({f['count']} execs); hashing the same {h['bytes']} bytes in {h['tool']}: p50 {h['p50']:.1f} us")
    a = results["first_sight_under_attack_us"]
    print(f"first-sight decision while another user grows and execs 32 MiB files: p50 {a['p50']:.1f} us, "
          f"p99 {a['p99']:.1f} us ({a['count']} execs) -> p99 {a['p99'] / f['p99']:.2f}x idle; the attacker's "
          f"{a['attacker_execs']} execs: {a['attacker_deadline_answers']} answered at the deadline; decisions over "
          f"the 100 ms deadline: {a['over_deadline']} (longest {a['max_us'] / 1000:.1f} ms)")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
