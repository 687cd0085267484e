#!/usr/bin/env python3
"""The sensor benchmarks behind scripts/bench-sensor. Every figure is measured in this run,
next to a baseline measured in the same run, and printed with the ratio."""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid


def log(message):
    print(message, file=sys.stderr, flush=True)


class TmpfsMount:
    def __init__(self, size):
        self.path = f"/tmp/shmwarden-bench-{uuid.uuid4().hex[:8]}"
        os.mkdir(self.path)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", self.path], check=True)

    def close(self):
        subprocess.run(["umount", "-l", self.path], check=False)
        shutil.rmtree(self.path, ignore_errors=True)


class Agent:
    """`shmwarden run` on one watched directory, with its commit log."""

    def __init__(self, binary, watch):
        self.state = tempfile.mkdtemp(prefix="shmwarden-bench-state-")
        self.commit_log = os.path.join(self.state, "commits.log")
        self.stderr = open(os.path.join(self.state, "agent.log"), "w+")
        self.process = subprocess.Popen(
            [binary, "run", "--state-dir", self.state, "--no-discover", "--watch", watch,
             "--log-level", "notice", "--commit-log", self.commit_log, "--insecure"],
            stdout=subprocess.DEVNULL, stderr=self.stderr)
        deadline = time.time() + 30
        while time.time() < deadline:
            if os.path.exists(self.commit_log) and "watching" in open(self.stderr.name).read():
                time.sleep(0.3)  # the start rescan
                return
            time.sleep(0.05)
        raise RuntimeError("agent did not start: " + open(self.stderr.name).read())

    def commits(self):
        """path → monotonic ns of the first commit of a record for that path."""
        result = {}
        with open(self.commit_log, "rb") as handle:
            for line in handle:
                stamp, _, path = line.rstrip(b"\n").partition(b"\t")
                result.setdefault(path.decode("utf-8", "replace"), int(stamp))
        return result

    def wait_for(self, paths, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            commits = self.commits()
            if all(p in commits for p in paths):
                return commits
            time.sleep(0.05)
        return self.commits()

    def rss_kib(self):
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        shutil.rmtree(self.state, ignore_errors=True)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def write_executable(path, index):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o755)
    os.write(fd, b"#!/bin/sh\n# shmwarden benchmark file %d\nexit 0\n" % index)
    os.close(fd)
    return time.monotonic_ns()


def paced_writes(directory, count, rate):
    """Writes `count` executables at `rate` per second; returns path → monotonic ns after close."""
    closed = {}
    interval = 1.0 / rate
    start = time.monotonic()
    for index in range(count):
        target = start + index * interval
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        path = os.path.join(directory, f"paced-{index}")
        closed[path] = write_executable(path, index)
    return closed


def percentiles(samples_ns):
    samples = sorted(samples_ns)
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] / 1e6
    return {"p50": pick(0.50), "p99": pick(0.99), "max": samples[-1] / 1e6, "n": len(samples)}


def latency_shmwarden(binary, count, rate):
    mount = TmpfsMount("512m")
    agent = Agent(binary, mount.path)
    try:
        closed = paced_writes(mount.path, count, rate)
        commits = agent.wait_for(closed.keys(), timeout=60)
        missing = [p for p in closed if p not in commits]
        return percentiles([commits[p] - closed[p] for p in closed if p in commits]), len(missing)
    finally:
        agent.stop()
        mount.close()


def latency_inotifywait(count, rate):
    """`inotifywait -m | sha256sum` per file; each output line is stamped as it arrives."""
    mount = TmpfsMount("512m")
    stamps = {}
    pipeline = subprocess.Popen(
        ["bash", "-c",
         f"inotifywait -m -q -e close_write --format '%w%f' {mount.path} | "
         "while IFS= read -r f; do sha256sum \"$f\"; done"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0, start_new_session=True)

    def reader():
        for line in iter(pipeline.stdout.readline, b""):
            now = time.monotonic_ns()
            path = line.rstrip(b"\n").split(b"  ", 1)[-1].decode("utf-8", "replace")
            stamps.setdefault(path, now)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    time.sleep(1.0)  # inotifywait sets its watch
    try:
        closed = paced_writes(mount.path, count, rate)
        deadline = time.time() + 60
        while time.time() < deadline and len(stamps) < count:
            time.sleep(0.05)
        missing = [p for p in closed if p not in stamps]
        return percentiles([stamps[p] - closed[p] for p in closed if p in stamps]), len(missing)
    finally:
        os.killpg(pipeline.pid, signal.SIGTERM)
        mount.close()


def burst(binary, count):
    mount = TmpfsMount("1g")
    agent = Agent(binary, mount.path)
    try:
        paths = [os.path.join(mount.path, f"burst-{i}") for i in range(count)]
        start = time.monotonic_ns()
        for index, path in enumerate(paths):
            write_executable(path, index)
        written = time.monotonic_ns()
        commits = agent.wait_for(paths, timeout=600)
        recorded = sum(1 for p in paths if p in commits)
        last = max((commits[p] for p in paths if p in commits), default=written)
        overflows = open(os.path.join(agent.state, "agent.log")).read().count("overflowed")
        return {"files": count, "recorded": recorded, "write_s": (written - start) / 1e9,
                "last_recorded_s": (last - start) / 1e9, "overflow_log_lines": overflows}
    finally:
        agent.stop()
        mount.close()


def timed(command, runs):
    times = []
    for _ in range(runs):
        start = time.monotonic()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.monotonic() - start)
    return statistics.median(times)


def bench_binary(binary):
    """The benchmarks' helper, built beside `binary` (PRODUCT=shmwarden-bench scripts/build-release)."""
    return os.path.join(os.path.dirname(os.path.abspath(binary)), "shmwarden-bench")


def hash_throughput(binary, size_mib, runs):
    path = f"/dev/shm/shmwarden-bench-hash-{uuid.uuid4().hex[:8]}"
    try:
        with open(path, "wb") as handle:
            for _ in range(size_mib):
                handle.write(os.urandom(1 << 20))
        expected = subprocess.run(["openssl", "dgst", "-sha256", "-r", path], check=True,
                                  capture_output=True, text=True).stdout.split()[0]
        ours = subprocess.run([bench_binary(binary), "hash", path], check=True, capture_output=True,
                              text=True).stdout.split()[0]
        assert ours == expected, f"digest mismatch: {ours} vs {expected}"
        megabytes = size_mib * (1 << 20) / 1e6
        result = {}
        for name, command in [("shmwarden", [bench_binary(binary), "hash", path]),
                              ("openssl", ["openssl", "dgst", "-sha256", path]),
                              ("sha256sum", ["sha256sum", path])]:
            seconds = timed(command, runs)
            result[name] = {"seconds": seconds, "MB_per_s": megabytes / seconds}
        return result
    finally:
        os.unlink(path)


def idle(binary, count, seconds):
    mount = TmpfsMount("512m")
    agent = Agent(binary, mount.path)
    baseline = None
    try:
        paths = [os.path.join(mount.path, f"d{i % 100}", f"idle-{i}") for i in range(count)]
        for i in range(100):
            os.mkdir(os.path.join(mount.path, f"d{i}"))
        for index, path in enumerate(paths):
            write_executable(path, index)
        agent.wait_for(paths, timeout=120)
        time.sleep(2)
        baseline = subprocess.Popen(["inotifywait", "-m", "-r", "-q", mount.path],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
        hz = os.sysconf("SC_CLK_TCK")
        ours_before, theirs_before = cpu_ticks(agent.process.pid), cpu_ticks(baseline.pid)
        time.sleep(seconds)
        ours_cpu = (cpu_ticks(agent.process.pid) - ours_before) / hz / seconds * 100
        theirs_cpu = (cpu_ticks(baseline.pid) - theirs_before) / hz / seconds * 100
        with open(f"/proc/{baseline.pid}/status") as status:
            theirs_rss = next(int(l.split()[1]) for l in status if l.startswith("VmRSS:"))
        return {"files": count, "shmwarden_rss_mib": agent.rss_kib() / 1024, "shmwarden_cpu_pct": ours_cpu,
                "inotifywait_rss_mib": theirs_rss / 1024, "inotifywait_cpu_pct": theirs_cpu}
    finally:
        if baseline:
            baseline.terminate()
        agent.stop()
        mount.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--only", choices=["latency", "burst", "hash", "idle"])
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench-sensor needs root (it mounts private tmpfs)")
    quick = args.quick
    binary = os.path.abspath(args.binary)

    if args.only in (None, "latency"):
        count = 1000 if quick else 5000
        log(f"latency: {count} files at 1,000/s, shmwarden then inotifywait | sha256sum ...")
        ours, ours_missing = latency_shmwarden(binary, count, 1000)
        theirs, theirs_missing = latency_inotifywait(count, 1000)
        print(f"latency close-write → recorded, {count} files at 1,000/s (ms):")
        print(f"  shmwarden (row committed)     p50 {ours['p50']:.3f}  p99 {ours['p99']:.3f}  max {ours['max']:.3f}  missing {ours_missing}")
        print(f"  inotifywait | sha256sum       p50 {theirs['p50']:.3f}  p99 {theirs['p99']:.3f}  max {theirs['max']:.3f}  missing {theirs_missing}")
        print(f"  ratio baseline/shmwarden      p50 {theirs['p50'] / ours['p50']:.1f}x  p99 {theirs['p99'] / ours['p99']:.1f}x")
    if args.only in (None, "burst"):
        count = 10000 if quick else 100000
        log(f"burst: {count} executables as fast as possible ...")
        result = burst(binary, count)
        print(f"burst: {result['recorded']}/{result['files']} executables recorded; written in "
              f"{result['write_s']:.2f} s, last recorded {result['last_recorded_s']:.2f} s after the first write "
              f"(overflow log lines: {result['overflow_log_lines']})")
    if args.only in (None, "hash"):
        size = 256 if quick else 1024
        log(f"hash: {size} MiB in /dev/shm, median of 3 ...")
        result = hash_throughput(binary, size, 3)
        print(f"hash throughput, {size} MiB in /dev/shm (median of 3):")
        for name, figures in result.items():
            print(f"  {name:10s} {figures['seconds']:.3f} s  {figures['MB_per_s']:.0f} MB/s")
        print(f"  ratio shmwarden/openssl {result['shmwarden']['MB_per_s'] / result['openssl']['MB_per_s']:.2f}x, "
              f"shmwarden/sha256sum {result['shmwarden']['MB_per_s'] / result['sha256sum']['MB_per_s']:.2f}x")
    if args.only in (None, "idle"):
        count = 10000
        log(f"idle: {count} recorded files, 10 s idle ...")
        result = idle(binary, count, 10)
        print(f"idle with {result['files']} recorded files (10 s): shmwarden RSS {result['shmwarden_rss_mib']:.1f} MiB, "
              f"CPU {result['shmwarden_cpu_pct']:.2f}%; inotifywait -m -r RSS {result['inotifywait_rss_mib']:.1f} MiB, "
              f"CPU {result['inotifywait_cpu_pct']:.2f}%")


if __name__ == "__main__":
    main()
