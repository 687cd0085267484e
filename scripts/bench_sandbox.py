"""Sandbox benchmark: start-to-exit against bubblewrap, and the cost of observation. See scripts/bench-sandbox."""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BWRAP = ["bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup",
         "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
         "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin",
         "--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache", "--proc", "/proc", "--dev", "/dev",
         "--tmpfs", "/tmp"]


def timed(command):
    start = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({result.returncode}): {result.stderr.decode()[:300]}")
    return elapsed, result.stdout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--floor", help="notify_floor built from scripts/notify_floor.c: the kernel's own cost")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    runs = 20 if args.quick else 100
    state = tempfile.mkdtemp(prefix="shmwarden-bench-sandbox-", dir="/var/tmp")
    true = os.path.realpath("/bin/true")
    try:
        ours_cmd = [binary, "sandbox", true, "--state-dir", state, "--json"]
        bwrap_cmd = BWRAP + [true]
        for _ in range(3):  # warm caches
            timed(ours_cmd)
            timed(bwrap_cmd)
        ours, bwrap, inside = [], [], []
        for i in range(runs):
            elapsed, out = timed(ours_cmd)
            ours.append(elapsed * 1000)
            inside.append(json.loads(out)["durationMs"])
            bwrap.append(timed(bwrap_cmd)[0] * 1000)
            if (i + 1) % 20 == 0:
                print(f"start: {i + 1}/{runs} runs", file=sys.stderr)
        # The same jail as the agent's `sandbox` action runs it: in one process that has run
        # before, without a process start. Chunks of 11 runs (the first, cold, dropped), each
        # followed by 10 of bwrap.
        warm, warm_store, warm_bwrap = [], [], []
        for _ in range(max(2, runs // 10)):
            out = subprocess.run([os.path.join(os.path.dirname(binary), "shmwarden-bench"), "sandbox-runs", true,
                                  "--runs", "11", "--state-dir", state],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"shmwarden-bench sandbox-runs failed: {out.stderr[:300]}")
            for line in out.stdout.splitlines()[1:]:
                ran, stored = line.split()
                warm.append(float(ran))
                warm_store.append(float(stored))
            for _ in range(10):
                warm_bwrap.append(timed(bwrap_cmd)[0] * 1000)
        find = os.path.realpath("/usr/bin/find")
        heavy = ["--", "/usr/share", "-maxdepth", "3"]
        observed, unresulted, plain, observed_calls = [], [], [], []
        floor_observed, floor_plain = [], []
        for i in range(max(10, runs // 3)):
            if args.floor:
                # The least a supervisor can do on the same program, on one CPU like the jail's;
                # the CPU changes from round to round, as the jails' does from run to run. (The
                # first round is run twice: its first observed run was once 1.3 s, not 0.05.)
                cpu = str(i % (os.cpu_count() or 1))
                for mode, into in (("observed", floor_observed), ("plain", floor_plain)) * (2 if i == 0 else 1):
                    result = subprocess.run([args.floor, mode, cpu, find] + heavy[1:], capture_output=True, text=True)
                    if result.returncode != 0:
                        raise SystemExit(f"notify_floor {mode} failed: {result.stderr[:300]}")
                    into.append(float(result.stdout))
                if i == 0:
                    del floor_observed[0], floor_plain[0]
            _, out = timed([binary, "sandbox", find, "--state-dir", state, "--json", "--timeout", "60"] + heavy)
            report = json.loads(out)
            observed.append(report["durationMs"])
            observed_calls.append(sum(report["syscalls"].values()))
            # Observed, without the trace of the calls' results (the default has it).
            _, out = timed([binary, "sandbox", find, "--state-dir", state, "--json", "--timeout", "60", "--no-results"] + heavy)
            unresulted.append(json.loads(out)["durationMs"])
            _, out = timed([binary, "sandbox", find, "--state-dir", state, "--json", "--timeout", "60", "--no-observe"] + heavy)
            plain.append(json.loads(out)["durationMs"])
        results = {
            "start_ms": {"shmwarden_cli_p50": statistics.median(ours), "bwrap_p50": statistics.median(bwrap),
                         "ratio": statistics.median(ours) / statistics.median(bwrap),
                         "shmwarden_in_jail_p50": statistics.median(inside), "runs": runs},
            "warm_ms": {"run_to_report_p50": statistics.median(warm), "store_p50": statistics.median(warm_store),
                        "bwrap_p50": statistics.median(warm_bwrap),
                        "ratio": statistics.median(warm) / statistics.median(warm_bwrap),
                        "ratio_with_store": statistics.median([a + b for a, b in zip(warm, warm_store)])
                        / statistics.median(warm_bwrap), "runs": len(warm)},
            "trace_ms": {"observed_p50": statistics.median(observed), "filter_only_p50": statistics.median(plain),
                         "ratio": statistics.median(observed) / statistics.median(plain),
                         "observed_without_results_p50": statistics.median(unresulted),
                         "ratio_without_results": statistics.median(unresulted) / statistics.median(plain),
                         "observed_calls": statistics.median(observed_calls)},
        }
        trace = results["trace_ms"]
        trace["extra_us_per_call"] = (trace["observed_p50"] - trace["filter_only_p50"]) * 1000 / trace["observed_calls"]
        if floor_observed:
            o, p = statistics.median(floor_observed), statistics.median(floor_plain)
            results["kernel_floor_ms"] = {"observed_p50": o, "filter_only_p50": p, "ratio": o / p,
                                          "extra_us_per_call": (o - p) * 1000 / trace["observed_calls"]}
    finally:
        shutil.rmtree(state, ignore_errors=True)
    s, t = results["start_ms"], results["trace_ms"]
    print(f"/bin/true start-to-exit: shmwarden sandbox (whole CLI) {s['shmwarden_cli_p50']:.1f} ms, "
          f"bwrap {s['bwrap_p50']:.1f} ms -> {s['ratio']:.2f}x; inside the jail (clone to exit) {s['shmwarden_in_jail_p50']:.1f} ms")
    w = results["warm_ms"]
    print(f"  in a process that has run before (the agent's sandbox action): run to report {w['run_to_report_p50']:.1f} ms, "
          f"bwrap {w['bwrap_p50']:.1f} ms -> {w['ratio']:.2f}x; with the report's durable store "
          f"(+{w['store_p50']:.1f} ms, an fsync) {w['ratio_with_store']:.2f}x")
    print(f"find /usr/share -maxdepth 3: observed {t['observed_p50']:.1f} ms ({t['observed_calls']:.0f} notified calls), "
          f"filter only {t['filter_only_p50']:.1f} ms -> {t['ratio']:.2f}x ({t['extra_us_per_call']:.1f} us per notified call); "
          f"observed without the results' trace (--no-results) {t['observed_without_results_p50']:.1f} ms -> "
          f"{t['ratio_without_results']:.2f}x")
    if "kernel_floor_ms" in results:
        f = results["kernel_floor_ms"]
        print(f"  kernel floor (scripts/notify_floor.c: receive, read 256 bytes, answer; no jail): observed "
              f"{f['observed_p50']:.1f} ms, filter only {f['filter_only_p50']:.1f} ms -> {f['ratio']:.2f}x "
              f"({f['extra_us_per_call']:.1f} us per notified call)")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
