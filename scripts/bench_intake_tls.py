#!/usr/bin/env python3
"""Mutual TLS against plain HTTP on the intake, in the same run (scripts/bench-intake --tls).

Two agents side by side: one as installed (mutual TLS, client certificates from `certs init`),
one with `--insecure` (plain HTTP). The same client drives both, the two ways Falco's
http_output sends:
  keep_alive: true   N connections kept open, each posting one alert after the other
                     (scripts/tls_load.c: C and OpenSSL, so the client's TLS costs little);
  keep_alive: false  Falco's default: one alert at a time, a new connection (and handshake)
                     for each; with TLS, also with session resumption (the client offers the
                     session ticket of the previous connection).
Every alert is unique; after each agent stops, the alerts answered 200 are counted in its store.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

from bench_intake import ALERT


def body(index):
    alert = dict(ALERT, time=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{index % 1_000_000_000:09d}Z")
    return json.dumps(alert, separators=(",", ":")).encode()


def request(index):
    payload = body(index)
    return (b"POST /falco HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)


class Counter:
    """The next alert number: every alert sent is unique (none is a duplicate, answered fast)."""

    def __init__(self, start):
        self.next = start

    def take(self):
        self.next += 1
        return self.next


def new_connection_each(port, context, seconds, counter, resume):
    """Falco's keep_alive: false, one alert after the other: alerts/s, p50, p99 (ms), answered 200."""
    latencies, ok, session = [], 0, None
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    resumed = 0
    while time.monotonic() < deadline:
        start = time.perf_counter()
        raw = socket.create_connection(("127.0.0.1", port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = context.wrap_socket(raw, server_hostname="127.0.0.1", session=session if resume else None) if context else raw
        sock.sendall(request(counter.take()).replace(b"Host: 127.0.0.1\r\n", b"Host: 127.0.0.1\r\nConnection: close\r\n"))
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        if context:
            resumed += sock.session_reused
            session = sock.session
        sock.close()
        latencies.append((time.perf_counter() - start) * 1000)
        ok += data.startswith(b"HTTP/1.1 200")
    elapsed = time.monotonic() - started
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50": latencies[len(latencies) // 2],
            "p99": latencies[int(len(latencies) * 0.99)], "ok": ok, "sent": len(latencies), "resumed": resumed}


def build_load(work):
    """scripts/tls_load.c, compiled into `work`."""
    binary = os.path.join(work, "tls_load")
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tls_load.c")
    subprocess.run(["cc", "-O2", "-o", binary, source, "-lssl", "-lcrypto", "-lpthread"], check=True)
    return binary


def keep_alive_c(load, work, port, tls, connections, seconds, counter):
    """The C client: requests/s, p50, p99 (ms), answered 200, sent."""
    alert = dict(ALERT, time=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".MARKERZ")
    text = json.dumps(alert, separators=(",", ":"))
    before, after = text.split("MARKER")
    paths = []
    for name, part in (("prefix", before), ("suffix", after)):
        path = os.path.join(work, f"{name}.txt")
        with open(path, "w") as handle:
            handle.write(part)
        paths.append(path)
    start = counter.next
    counter.next += 50_000_000
    arguments = [load, "127.0.0.1", str(port), str(connections), str(seconds)] + paths + [str(start)]
    if tls:
        arguments += [os.path.join(tls, "ca.crt"), os.path.join(tls, "clients/falco.crt"),
                      os.path.join(tls, "clients/falco.key")]
    rps, p50, p99, ok, sent = subprocess.run(arguments, check=True, capture_output=True, text=True).stdout.split()
    return {"rps": float(rps), "p50": float(p50), "p99": float(p99), "ok": int(ok), "sent": int(sent)}


def wait_for(port, context):
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=1)
            sock = context.wrap_socket(raw, server_hostname="127.0.0.1") if context else raw
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if sock.recv(100).startswith(b"HTTP/1.1 200"):
                sock.close()
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on {port}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    seconds = 4 if args.quick else 10
    work = tempfile.mkdtemp(prefix="shmwarden-bench-tls-")
    agents = {}
    try:
        tls = os.path.join(work, "tls")
        subprocess.run([binary, "certs", "init", "--directory", tls], check=True, stdout=subprocess.DEVNULL)
        context = ssl.create_default_context(cafile=os.path.join(tls, "ca.crt"))
        context.load_cert_chain(os.path.join(tls, "clients/falco.crt"), os.path.join(tls, "clients/falco.key"))
        ports = {"plain": 28060, "mtls": 28061}
        for name, port in ports.items():
            state, watch = os.path.join(work, f"state-{name}"), os.path.join(work, f"watch-{name}")
            os.mkdir(watch)
            security = ["--insecure"] if name == "plain" else ["--tls-directory", tls]
            agents[name] = (subprocess.Popen(
                [binary, "run", "--state-dir", state, "--no-discover", "--watch", watch, "--listen",
                 f"127.0.0.1:{port}", "--log-level", "error"] + security,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), state)
            wait_for(port, context if name == "mtls" else None)
        counters = {name: Counter(index * 100_000_000) for index, name in enumerate(ports)}
        contexts = {"plain": None, "mtls": context}
        answered = {name: 0 for name in ports}

        load = build_load(work)
        print(f"keep_alive: true, {seconds} s each after a {seconds // 2} s warm-up, interleaved (C client):")
        for connections in (1, 16, 64):
            results = {}
            for name, port in ports.items():
                security = tls if name == "mtls" else None
                warm = keep_alive_c(load, work, port, security, connections, seconds // 2, counters[name])
                results[name] = keep_alive_c(load, work, port, security, connections, seconds, counters[name])
                answered[name] += warm["ok"] + results[name]["ok"]
            plain, mtls = results["plain"], results["mtls"]
            print(f"  {connections:3d} connections: plain {plain['rps']:6.0f} req/s p50 {plain['p50']:.2f} ms "
                  f"p99 {plain['p99']:.2f} ms | mutual TLS {mtls['rps']:6.0f} req/s p50 {mtls['p50']:.2f} ms "
                  f"p99 {mtls['p99']:.2f} ms -> {mtls['rps'] / plain['rps']:.2f}x")

        print(f"keep_alive: false (Falco's default), one alert at a time, a new connection each, {seconds} s:")
        plain = new_connection_each(ports["plain"], None, seconds, counters["plain"], False)
        full = new_connection_each(ports["mtls"], context, seconds, counters["mtls"], False)
        resumed = new_connection_each(ports["mtls"], context, seconds, counters["mtls"], True)
        answered["plain"] += plain["ok"]
        answered["mtls"] += full["ok"] + resumed["ok"]
        for label, result in (("plain HTTP", plain), ("mutual TLS, full handshake", full),
                              ("mutual TLS, session resumed", resumed)):
            extra = f", {result['resumed']} of {result['sent']} resumed" if "resumed" in label else ""
            print(f"  {label:28s} {result['rps']:6.0f} alerts/s  p50 {result['p50']:.2f} ms  p99 {result['p99']:.2f} ms"
                  f"  -> {result['rps'] / plain['rps']:.2f}x{extra}")
        print(f"  the handshake's cost per alert: full {full['p50'] - plain['p50']:.2f} ms, "
              f"resumed {resumed['p50'] - plain['p50']:.2f} ms (p50 over plain)")

        for name, (process, state) in agents.items():
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
            stored = json.loads(subprocess.run([binary, "alerts", "--state-dir", state, "--json"], check=True,
                                               capture_output=True, text=True).stdout)
            verdict = "all durable" if len(stored) >= answered[name] else "LOST"
            print(f"  {name}: {answered[name]} answered 200, {len(stored)} stored ({verdict})")
            if len(stored) < answered[name]:
                raise SystemExit(1)
        agents.clear()
    finally:
        for process, _ in agents.values():
            process.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
