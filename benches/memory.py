#!/usr/bin/env python3
"""Memory per idle keep-alive connection and per SSE subscriber, from the server's RSS.

    python3 benches/memory.py            # after the release builds (see docs/benchmarks.md)

Starts each server on a free loopback port, opens N connections that each make one request
(`GET /api/hello`, keep-alive) and then stay open and idle, or N Server-Sent Event streams of
the reference app (`GET /api/v1/events`, each read up to its `connected` event), and reports
(RSS with them open - RSS before) / N, the median of ROUNDS rounds, each on a fresh process. Standard library only.
Settings from the environment: N (2000), ROUNDS (3).
"""

import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
N = int(os.environ.get("N", "2000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))

SERVERS = {
    "arbor-stack (App, JSON logs)": (
        ROOT / "target/peers/release/arbor-peer",
        {"ARBOR_LOG_FORMAT": "json"},
    ),
    "arbor-bare (generated router)": (
        ROOT / "target/peers/release/arbor-peer",
        {"ARBOR_PEER_MODE": "bare"},
    ),
    "axum-bare (hand-written)": (ROOT / "target/peers/release/axum-peer", {}),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def start(binary, env, port, workdir):
    process = subprocess.Popen(
        [str(binary)],
        env={**os.environ, **env, "HOST": "127.0.0.1", "PORT": str(port)},
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(400):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=1):
                return process
        except OSError:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/hello", timeout=1):
                    return process
            except OSError:
                time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{binary} did not start")


def read_until(sock, marker):
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"closed before {marker!r}: {data[:200]!r}")
        data += chunk
    return data


def open_idle(port, path, headers=""):
    """A connection that made one request, read its answer head and stays open."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\n{headers}\r\n".encode())
    return sock


def settle(pid):
    """RSS once it stops moving (allocators return memory lazily)."""
    last = rss_kib(pid)
    for _ in range(20):
        time.sleep(0.1)
        now = rss_kib(pid)
        if now == last:
            return now
        last = now
    return last


def per_connection(pid, port, path, marker, headers=""):
    before = settle(pid)
    socks = []
    for _ in range(N):
        sock = open_idle(port, path, headers)
        read_until(sock, marker)
        socks.append(sock)
    after = settle(pid)
    for sock in socks:
        sock.close()
    time.sleep(0.5)
    return (after - before) * 1024 / N


def sse_round(app):
    """One fresh reference app, a user, N event streams of that user."""
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        env = {"DATABASE_URL": f"sqlite://{workdir}/app.db?mode=rwc", "RUST_LOG": "warn",
               "ARBOR_UPLOAD_DIR": f"{workdir}/uploads"}
        process = start(app, env, port, workdir)
        try:
            body = json.dumps({"email": "memory@example.com", "name": "Memory",
                               "password": "Str0ngPassword"}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/register", data=body,
                headers={"content-type": "application/json"})
            with urllib.request.urlopen(request) as answer:
                token = json.load(answer)["token"]
            auth = f"authorization: Bearer {token}\r\naccept: text/event-stream\r\n"
            return per_connection(process.pid, port, "/api/v1/events", b"event: connected", auth)
        finally:
            process.kill()
            process.wait()


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * N + 256)), hard))
    results = {}
    for name, (binary, env) in SERVERS.items():
        if not binary.exists():
            sys.exit(f"{binary} is missing: build it first (bash benches/peers/run.sh builds it)")
        per = []
        # A fresh process each round: a second round in the same one reuses what the first
        # freed, and would measure the allocator rather than the connections.
        for _ in range(ROUNDS):
            port = free_port()
            with tempfile.TemporaryDirectory() as workdir:
                process = start(binary, env, port, workdir)
                try:
                    per.append(per_connection(process.pid, port, "/api/hello", b"hello"))
                finally:
                    process.kill()
                    process.wait()
        results[f"idle keep-alive connection: {name}"] = per

    app = ROOT / "target/release/arbor-app"
    if not app.exists():
        sys.exit(f"{app} is missing: cargo build --release --bin arbor-app")
    per = []
    for _ in range(ROUNDS):
        per.append(sse_round(app))
    results["SSE subscriber: the reference app's /api/v1/events"] = per

    print(f"N = {N} connections, median of {ROUNDS} rounds (bytes of RSS each)")
    for name, per in results.items():
        rounds = " ".join(f"{p:,.0f}" for p in per)
        print(f"| {name} | {statistics.median(per):,.0f} | {rounds} |")


if __name__ == "__main__":
    main()
