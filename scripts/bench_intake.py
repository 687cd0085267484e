#!/usr/bin/env python3
"""The intake benchmarks behind scripts/bench-intake."""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ALERT = {
    "hostname": "bench-node",
    "output": ("12:00:00.000000000: Warning File execution detected from /dev/shm | evt_res=SUCCESS "
               "file=/dev/shm/payload proc_cwd=/root/ proc_pcmdline=bash user_loginname=root group_gid=0 "
               "group_name=root evt_type=execve user=root user_uid=0 user_loginuid=0 process=payload "
               "proc_exepath=/dev/shm/payload parent=bash command=payload --connect 203.0.113.7 terminal=34816 "
               "exe_flags=EXE_WRITABLE container_id=host container_image=<NA> container_image_tag=<NA> "
               "container_name=host k8s_ns=<NA> k8s_pod_name=<NA>"),
    "priority": "Warning",
    "rule": "Execution from /dev/shm",
    "source": "syscall",
    "tags": ["T1059.004", "container", "host", "maturity_stable", "mitre_execution"],
    "time": "2026-11-29T12:00:00.000000000Z",
    "output_fields": {
        "container.id": "host", "evt.arg.flags": "EXE_WRITABLE", "evt.res": "SUCCESS", "evt.type": "execve",
        "fd.name": "/dev/shm/payload", "group.gid": 0, "group.name": "root", "proc.cmdline": "payload --connect 203.0.113.7",
        "proc.cwd": "/root/", "proc.exepath": "/dev/shm/payload", "proc.name": "payload", "proc.pcmdline": "bash",
        "proc.pname": "bash", "proc.tty": 34816, "user.loginname": "root", "user.loginuid": 0, "user.name": "root",
        "user.uid": 0, "evt.time": 1795435200000000000, "proc.pid": 48211, "proc.ppid": 48190,
        "proc.exe": "/dev/shm/payload", "proc.args": "--connect 203.0.113.7", "proc.sid": 48190,
        "container.name": "host", "container.image.repository": None, "container.image.tag": None,
        "k8s.ns.name": None, "k8s.pod.name": None,
    },
}

# The counter starts where the script is told (WRK_COUNTER_BASE): every wrk run against one
# server posts alerts no earlier run posted, so none is a duplicate (stored once, answered fast).
LUA = r"""
counter = tonumber(os.getenv("WRK_COUNTER_BASE") or "0")
prefix = [[%s]]
suffix = [[%s]]
request = function()
  counter = counter + 1
  local body = prefix .. string.format("%%09d", counter %% 1000000000) .. suffix
  return wrk.format("POST", "/falco", {["Content-Type"] = "application/json"}, body)
end
"""

# The same, but each alert names a file of its own (PATH in the suffix becomes the path with the
# counter appended): no two alerts share a lookup.
LUA_DISTINCT = r"""
counter = tonumber(os.getenv("WRK_COUNTER_BASE") or "0")
prefix = [[%s]]
pieces = {}
for piece in string.gmatch([[%s]] .. "PATH", "(.-)PATH") do pieces[#pieces + 1] = piece end
request = function()
  counter = counter + 1
  local n = string.format("%%09d", counter %% 1000000000)
  local parts = {prefix, n}
  for i, piece in ipairs(pieces) do
    parts[#parts + 1] = piece
    if i < #pieces then parts[#parts + 1] = "%s-" .. n end
  end
  return wrk.format("POST", "/falco", {["Content-Type"] = "application/json"}, table.concat(parts))
end
"""


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/falco", "-X", "POST",
                           "--data", "{}"], check=False).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


wrk_runs = 0


def run_wrk(port, seconds, script, connections=16):
    global wrk_runs
    wrk_runs += 1
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script,
                          f"http://127.0.0.1:{port}/falco"], check=True, capture_output=True, text=True,
                         env=dict(os.environ, WRK_COUNTER_BASE=str(wrk_runs * 10_000_000 % 1_000_000_000))).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    def latency(label):
        match = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": latency("50"), "p99": latency("99"), "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "requests": int(re.search(r"(\d+) requests in", out).group(1))}


def thread_ticks(pid):
    """CPU ticks (user + system) of each thread of `pid`, by thread id: (name, ticks)."""
    ticks = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as handle:
                stat = handle.read()
        except FileNotFoundError:
            continue  # ended meanwhile
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        ticks[tid] = (name, int(fields[11]) + int(fields[12]))
    return ticks


def fdatasync_latency(directory, count=2000):
    """What one fdatasync of a 4 KiB overwrite costs on the disk under `directory` (idle): ms."""
    path = os.path.join(directory, "fdatasync-probe")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, b"\0" * (4096 * 256), 0)
        os.fsync(fd)
        times = []
        for index in range(count):
            os.pwrite(fd, os.urandom(4096), (index % 256) * 4096)
            start = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - start) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    times.sort()
    return {"p50": times[len(times) // 2], "p99": times[int(len(times) * 0.99)], "max": times[-1]}


def peak_rss_kib(pid):
    """The process's peak resident set size (VmHWM), KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def cpu_per_request(pid, before, requests):
    """Microseconds of CPU per request, by thread role, between `before` and now."""
    after = thread_ticks(pid)
    per_tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    roles = {}
    for tid, (name, ticks) in after.items():
        spent = ticks - before.get(tid, (name, 0))[1]
        # NIO's event loops, the Swift concurrency pool (where the HTTP handlers run; its
        # background-priority threads run the late looks at alerts waiting for their file), and
        # the agent's own named threads (warden-store is the SQLite writer).
        role = ("event loops" if name.startswith("NIO-") else
                "background pool" if name.endswith("background-qos") else
                "handler pool" if name.endswith("qos") or name.endswith("overcommit") else name)
        roles[role] = roles.get(role, 0) + spent * per_tick_us / max(1, requests)
    return roles


def format_roles(roles):
    shown = sorted(((role, us) for role, us in roles.items() if us >= 0.5), key=lambda item: -item[1])
    return ", ".join(f"{role} {us:.1f}" for role, us in shown) + f"; total {sum(roles.values()):.1f} us"


# The two decode-only baselines, each on a port of its own:
#   codable  Hummingbird's request.decode(as:context:) into a Codable alert (Foundation's
#            JSONDecoder): a plain Hummingbird handler, the "framework's ceiling" the intake issue
#            names (~10,000 requests/s, measured that way in PLATFORM-NOTES) and its goal's base;
#   warden   the same stack with the agent's own alert reader: a stricter ceiling (the agent's
#            decoding costs it nothing against this one).
BARE_PORTS = {"codable": 28051, "warden": 28052}


def start_bare(binary, decoding):
    """A decode-only baseline server (`decoding`: codable or warden), once it answers."""
    port = BARE_PORTS[decoding]
    bench = os.path.join(os.path.dirname(binary), "shmwarden-bench")
    bare = subprocess.Popen([bench, "bare-server", "--port", str(port), "--decoding", decoding],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return bare


def start_agent(binary, work, name):
    """`shmwarden run` on port 28050 with a state and a watched directory of its own, once it answers."""
    state = os.path.join(work, f"state-{name}")
    watch = os.path.join(work, f"watch-{name}")
    os.mkdir(watch)
    agent = subprocess.Popen([binary, "run", "--state-dir", state, "--no-discover", "--watch", watch,
                              "--listen", "127.0.0.1:28050", "--log-level", "error", "--insecure"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(28050)
    return agent, state, watch


def drop_payload(watch):
    """An executable the sensor records, given a second to do so."""
    payload = os.path.join(watch, "payload")
    shutil.copy("/bin/true", payload)
    os.chmod(payload, 0o755)
    time.sleep(1)
    return payload


def stop(process, how):
    process.send_signal(how)
    process.wait(timeout=60)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    seconds = 4 if args.quick else 10
    warmup = 2 if args.quick else 3
    work = tempfile.mkdtemp(prefix="shmwarden-bench-intake-")
    try:
        def write_script(name, path="/dev/shm/payload", distinct=False):
            # Stamped with the time the case starts: a file counts as evidence only for alerts
            # from around the time it existed (a fixed time stopped the recorded-file case from
            # correlating once the wall clock passed it). Each request's nanoseconds differ.
            now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            alert = dict(ALERT, time=now + ".000000000Z")
            body = json.dumps(alert, separators=(",", ":")).replace("/dev/shm/payload", path)
            marker = f'"time":"{now}.'
            prefix, suffix = body.split(marker)[0] + marker, body.split(marker)[1][9:]
            script = os.path.join(work, name)
            with open(script, "w") as handle:
                if distinct:
                    handle.write(LUA_DISTINCT % (prefix, suffix.replace(path, "PATH"), path))
                else:
                    handle.write(LUA % (prefix, suffix))
            return script, body, prefix, suffix

        script, body, prefix, suffix = write_script("post.lua")
        print(f"alert body: {len(body)} bytes, each request unique (time varies)")
        disk = fdatasync_latency(work)
        print(f"disk under the state directories, idle: fdatasync of a 4 KiB overwrite p50 {disk['p50']:.2f} ms, "
              f"p99 {disk['p99']:.2f} ms, max {disk['max']:.2f} ms")

        # Both servers are measured in their steady state: each measured run follows a warm-up
        # run of the same load on the same process (a fresh process, the bare one too, served
        # 20-35% fewer requests in its first seconds), and an agent runs for weeks.
        def measure(port, script, connections, pid=None):
            warm = run_wrk(port, warmup, script, connections)
            before = thread_ticks(pid) if pid else None
            result = run_wrk(port, seconds, script, connections)
            result["answered"] = warm["requests"] - warm["non2xx"] + result["requests"] - result["non2xx"]
            if pid:
                result["cpu"] = cpu_per_request(pid, before, result["rps"] * seconds)
            return result

        # Throughput by number of connections, bare server and agent (alerts about a recorded
        # file) each one process: a Falco's http_output posts one alert at a time (1); the group
        # commit fills its groups only with the alerts in flight, so the agent's throughput
        # grows with them while the bare server's is flat from 16 on.
        # Both servers run at once (the idle one costs nothing) and each connection count is
        # measured on the bare server, then on the agent: this VM's speed drifts by a quarter
        # within the hour, and two sweeps one after the other compared different machines.
        print(f"HTTP intake, wrk -t1 -d{seconds}s after {warmup}s of warm-up (server and wrk share the 2 cores; "
              "the two bare servers and the agent interleaved):")
        sweep = (1, 16, 32, 64, 128)
        bare_by = {"codable": {}, "warden": {}}
        ours_by = {}
        bares = {decoding: start_bare(binary, decoding) for decoding in BARE_PORTS}
        try:
            agent, _, watch = start_agent(binary, work, "sweep")
            try:
                sweep_script = write_script("post-sweep.lua", drop_payload(watch))[0]
                for connections in sweep:
                    for decoding, port in BARE_PORTS.items():
                        bare_by[decoding][connections] = measure(port, script, connections)
                    ours_by[connections] = measure(28050, sweep_script, connections)
            finally:
                stop(agent, signal.SIGTERM)
        finally:
            for bare in bares.values():
                stop(bare, signal.SIGINT)
        for connections in sweep:
            ours, codable, warden = ours_by[connections], bare_by["codable"][connections], bare_by["warden"][connections]
            print(f"  {connections:3d} connections: shmwarden {ours['rps']:6.0f} req/s  p50 {ours['p50']:.2f} ms  "
                  f"p99 {ours['p99']:.2f} ms  non-2xx {ours['non2xx']}")
            print(f"                   bare (codable) {codable['rps']:6.0f} req/s  p50 {codable['p50']:.2f} ms  "
                  f"p99 {codable['p99']:.2f} ms -> {ours['rps'] / codable['rps']:.2f}x;  "
                  f"bare (warden reader) {warden['rps']:6.0f} req/s  p99 {warden['p99']:.2f} ms -> "
                  f"{ours['rps'] / warden['rps']:.2f}x")

        # The headline: each server's highest throughput over the sweep, the bare ones' being the
        # ceilings on this machine, with the p99 at that point (the bound is 10 ms; on
        # this VM an fdatasync now and then takes 100-200 ms, and every alert of the group
        # waiting on it shows that in its latency).
        def peak(by):
            best = max(sweep, key=lambda c: by[c]["rps"])
            return best, by[best]
        ours_at, ours = peak(ours_by)
        for decoding, label in (("codable", "the issue's ceiling, Hummingbird's request.decode into Codable"),
                                ("warden", "the stricter ceiling, the agent's own reader")):
            bare_at, ceiling = peak(bare_by[decoding])
            print(f"  peak against {label}: shmwarden {ours['rps']:.0f} req/s at {ours_at} connections "
                  f"(p99 {ours['p99']:.2f} ms), bare {ceiling['rps']:.0f} req/s at {bare_at} (p99 {ceiling['p99']:.2f} ms) -> "
                  f"{ours['rps'] / ceiling['rps']:.2f}x")

        # Three cases at 64 connections: every alert names a file the sensor recorded (the usual
        # case: one correlation each); every alert names a file never seen (each is looked at
        # again later, the worst case for the intake); and every alert names a different file
        # never seen (no lookup is ever repeated: the store writer's memo of lookups never helps).
        connections = 64
        print(f"By case, {connections} connections:")
        ceilings = {}
        for decoding, port in BARE_PORTS.items():
            bare = start_bare(binary, decoding)
            try:
                ceilings[decoding] = measure(port, script, connections, bare.pid)
            finally:
                stop(bare, signal.SIGINT)
            ceiling = ceilings[decoding]
            print(f"  bare Hummingbird, {decoding:7s} decoding   {ceiling['rps']:8.0f} req/s  p50 {ceiling['p50']:.2f} ms  "
                  f"p99 {ceiling['p99']:.2f} ms")
            print(f"    CPU per request: {format_roles(ceiling['cpu'])}")
        cases = (("alerts about a recorded file", True, False), ("alerts about a file never seen", False, False),
                 ("each about a new file", False, True))
        for label, recorded, distinct in cases:
            agent, state, watch = start_agent(binary, work, f"{recorded}-{distinct}")
            try:
                payload = drop_payload(watch) if recorded else os.path.join(watch, "payload")
                case_script = write_script(f"post-{recorded}-{distinct}.lua", payload, distinct)[0]
                ours = measure(28050, case_script, connections, agent.pid)
                peak_rss_mib = peak_rss_kib(agent.pid) / 1024
            finally:
                stop(agent, signal.SIGTERM)
            stored = json.loads(subprocess.run([binary, "alerts", "--state-dir", state, "--json"], check=True,
                                               capture_output=True, text=True).stdout)
            correlated = sum(1 for alert in stored if alert["correlations"])
            if len(stored) < ours["answered"]:
                raise RuntimeError(f"{ours['answered']} alerts were answered 200 but only {len(stored)} are stored")
            if recorded and correlated != len(stored):
                raise RuntimeError(f"only {correlated} of {len(stored)} alerts about the recorded file were correlated")
            print(f"  shmwarden, {label:29s} {ours['rps']:6.0f} req/s  p50 {ours['p50']:.2f} ms  p99 {ours['p99']:.2f} ms  "
                  f"non-2xx {ours['non2xx']}  stored {len(stored)} ({correlated} correlated)  "
                  f"{ours['rps'] / ceilings['codable']['rps']:.2f}x codable, {ours['rps'] / ceilings['warden']['rps']:.2f}x warden")
            print(f"    CPU per alert: {format_roles(ours['cpu'])}; agent's peak RSS {peak_rss_mib:.0f} MiB")

        count = 20000 if args.quick else 100000
        ndjson = os.path.join(work, "alerts.ndjson")
        with open(ndjson, "w") as handle:
            for index in range(count):
                handle.write(prefix + f"{index:09d}" + suffix + "\n")
        ingest_state = os.path.join(work, "ingest-state")
        start = time.monotonic()
        subprocess.run([binary, "ingest", "--state-dir", ingest_state, ndjson], check=True,
                       stderr=subprocess.DEVNULL)
        elapsed = time.monotonic() - start
        print(f"ingest: {count} NDJSON alerts in {elapsed:.2f} s = {count / elapsed:.0f} alerts/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
