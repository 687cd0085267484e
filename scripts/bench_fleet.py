#!/usr/bin/env python3
"""The fleet benchmarks behind scripts/bench-fleet."""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_intake as intake  # noqa: E402  (its alert, wrk runner and agent helpers)

SINK_PORT = 28070
AGENT_PORT = 28050

# One event as the agent sends it: the receiver's ceiling is measured with its shape and size.
EVENT = {
    "uuid": "5f0c1e9e-6a2b-4d0c-9a53-1f0f3a1d2b7c",
    "output": "12:00:00.000000000: Critical Exec refused on tmpfs (proc.exepath=/dev/shm/payload proc.pid=48211 "
              "sha256=abababababababababababababababababababababababababababababababab guard.rule=unknown-binaries "
              "reason=not on the allowlist)",
    "priority": "Critical", "rule": "Exec refused on tmpfs", "time": "2026-11-29T12:00:00.000000000Z",
    "output_fields": {
        "shmwarden.event_id": "5f0c1e9e-6a2b-4d0c-9a53-1f0f3a1d2b7c", "shmwarden.event_type": "guard",
        "proc.pid": 48211, "proc.ppid": 1, "user.uid": 0, "proc.exepath": "/dev/shm/payload",
        "shmwarden.sha256": "ab" * 32, "shmwarden.guard.verdict": "deny", "shmwarden.guard.would_be": "deny",
        "shmwarden.guard.mode": "enforce", "shmwarden.guard.rule": "unknown-binaries",
        "shmwarden.guard.reason": "not on the allowlist", "shmwarden.guard.cached": False,
        "shmwarden.guard.decision_us": 80,
    },
    "source": "shmwarden", "tags": ["shmwarden", "process", "mitre_execution"], "hostname": "bench-node",
}


def sink_count():
    with urllib.request.urlopen(f"http://127.0.0.1:{SINK_PORT}/count", timeout=5) as answer:
        return int(answer.read())


def start_sink(bench, idle=False):
    # `idle`: under SCHED_IDLE, standing for Falcosidekick on another machine, so that its own CPU
    # is not what the agent's intake loses to; it still takes every event, when the CPU is free.
    prefix = ["chrt", "--idle", "0"] if idle else []
    sink = subprocess.Popen(prefix + [bench, "fleet-sink", "--port", str(SINK_PORT)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            sink_count()
            return sink
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the sink did not start")


def start_agent(binary, work, name, config):
    """`shmwarden run` on AGENT_PORT with its own state and watched directory (and `config`)."""
    state = os.path.join(work, f"state-{name}")
    watch = os.path.join(work, f"watch-{name}")
    os.mkdir(watch)
    arguments = [binary, "run", "--state-dir", state, "--no-discover", "--watch", watch, "--listen",
                 f"127.0.0.1:{AGENT_PORT}", "--log-level", "error", "--insecure", "--no-exec-monitor"]
    if config:
        arguments += ["--config", config]
    agent = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    intake.wait_port(AGENT_PORT)
    return agent, state, watch


def outbox_status(binary, state, config):
    out = subprocess.run([binary, "outputs", "status", "--state-dir", state, "--config", config, "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    bench = os.path.join(os.path.dirname(binary), "shmwarden-bench")
    seconds = 4 if args.quick else 10
    warmup = 2 if args.quick else 3
    rounds = 2 if args.quick else 5
    events = 20_000 if args.quick else 50_000
    work = tempfile.mkdtemp(prefix="shmwarden-bench-fleet-")
    sink = start_sink(bench)
    try:
        # The receiver's ceiling: wrk posting one event shape on 16 keep-alive connections.
        script = os.path.join(work, "event.lua")
        with open(script, "w") as handle:
            body = json.dumps(EVENT, separators=(",", ":"))
            handle.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                         f"wrk.body = [[{body}]]\n")
        out = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds}s", "-s", script, f"http://127.0.0.1:{SINK_PORT}/"],
                             check=True, capture_output=True, text=True).stdout
        ceiling = float(out.split("Requests/sec:")[1].split()[0])

        # From here on the receiver runs under SCHED_IDLE, standing for a Falcosidekick on another
        # machine: the forwarder's own threads run at nice 10, and a local receiver at normal
        # priority would take the CPU from them (and from the intake) as a remote one cannot.
        intake.stop(sink, signal.SIGINT)
        sink = start_sink(bench, idle=True)

        drains = []
        for _ in range(rounds):
            out = subprocess.run([bench, "fleet-drain", "--url", f"http://127.0.0.1:{SINK_PORT}/", "--events",
                                  str(events)], check=True, capture_output=True, text=True).stdout
            drains.append(json.loads(out.strip().splitlines()[-1]))
        rates = [drain["perSecond"] for drain in drains]
        print(f"Outbox drain, {events} events to a local receiver (under SCHED_IDLE) that checks each as Falcosidekick does "
              f"({rounds} runs): median {statistics.median(rates):.0f} events/s "
              f"(runs: {', '.join(f'{rate:.0f}' for rate in rates)}; refused: {sum(d['failed'] for d in drains)})")
        print(f"  the receiver's ceiling at normal priority, wrk -t1 -c16 -d{seconds}s posting one such event: {ceiling:.0f} req/s "
              f"-> drain at {statistics.median(rates) / ceiling:.2f}x of it")

        # Intake with forwarding on against off: the same correlated alert load, rounds interleaved.
        # The outbox may hold every alert of a run (the default limit, 100,000, would drop the
        # oldest under this load: that behaviour has its own test).
        config = os.path.join(work, "outputs.yaml")
        with open(config, "w") as handle:
            handle.write(f"outputs:\n  - name: sink\n    url: http://127.0.0.1:{SINK_PORT}/\n"
                         "outbox: {limit: 2000000}\n")
        print(f"HTTP intake of correlated alerts, wrk -t1 -d{seconds}s after {warmup}s of warm-up, "
              f"{rounds} rounds of off then on (the receiver under SCHED_IDLE, as if on another machine):")
        for connections in (16, 64):
            results = {"off": [], "on": []}
            delivered = []
            for round_index in range(rounds):
                for mode in ("off", "on"):
                    name = f"{mode}-{connections}-{round_index}"
                    agent, state, watch = start_agent(binary, work, name, config if mode == "on" else None)
                    try:
                        payload = intake.drop_payload(watch)
                        # Stamped after the drop: an alert is about a file only from around the
                        # time the file existed.
                        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
                        alert = dict(intake.ALERT, time=now + ".000000000Z")
                        body = json.dumps(alert, separators=(",", ":")).replace("/dev/shm/payload", payload)
                        marker = f'"time":"{now}.'
                        prefix, suffix = body.split(marker)[0] + marker, body.split(marker)[1][9:]
                        lua = os.path.join(work, f"{name}.lua")
                        with open(lua, "w") as handle:
                            handle.write(intake.LUA % (prefix, suffix))
                        before = sink_count()
                        warm = intake.run_wrk(AGENT_PORT, warmup, lua, connections)
                        result = intake.run_wrk(AGENT_PORT, seconds, lua, connections)
                        accepted = warm["requests"] - warm["non2xx"] + result["requests"] - result["non2xx"]
                        results[mode].append(result)
                        if mode == "on":
                            # Everything queued reaches the receiver once the load stops.
                            deadline = time.time() + 120
                            while time.time() < deadline:
                                status = outbox_status(binary, state, config)
                                if status["outputs"][0]["pending"] == 0:
                                    break
                                time.sleep(0.5)
                            delivered.append((sink_count() - before, accepted))
                    finally:
                        intake.stop(agent, signal.SIGTERM)
            off = statistics.median(r["rps"] for r in results["off"])
            on = statistics.median(r["rps"] for r in results["on"])
            p99_off = statistics.median(r["p99"] for r in results["off"])
            p99_on = statistics.median(r["p99"] for r in results["on"])
            print(f"  {connections:3d} connections: forwarding off {off:6.0f} req/s (p99 {p99_off:.2f} ms), "
                  f"on {on:6.0f} req/s (p99 {p99_on:.2f} ms) -> {on / off:.2f}x; "
                  f"runs off {', '.join('%.0f' % r['rps'] for r in results['off'])}, "
                  f"on {', '.join('%.0f' % r['rps'] for r in results['on'])}")
            print("       per 'on' run, enrichment events the receiver took / alerts the agent accepted: "
                  + ", ".join(f"{count}/{accepted}" for count, accepted in delivered))
    finally:
        intake.stop(sink, signal.SIGINT)
        subprocess.run(["rm", "-rf", work], check=False)


if __name__ == "__main__":
    main()
