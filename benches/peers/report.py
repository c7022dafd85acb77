#!/usr/bin/env python3
"""Writes RESULTS/latest.md from what run.sh recorded in RESULTS (runs.tsv, rss.tsv,
meta.tsv), and prints it. Standard library only.

    python3 report.py benches/peers/results

Every figure is a median over the rounds: requests per second, wrk's p50 and p99 latency, and
the server's CPU time per request, in user space and in the kernel. The ratios are the medians of the
per-round ratios (round by round, the two servers ran a few seconds apart, so a ratio within a
round is steadier than a ratio of two medians).
"""

import csv
import math
import statistics
import sys
from pathlib import Path

SERVERS = ["arbor-stack", "arbor-bare", "axum-bare", "axum-4mw", "next", "fastify", "arbor-app"]
ABOUT = {
    "arbor-stack": "Arbor peer, production stack (`arbor::App`), JSON request logs",
    "arbor-bare": "Arbor peer, generated router alone",
    "axum-bare": "hand-written axum, no middleware",
    "axum-4mw": "hand-written axum, the guide's four naive middleware",
    "next": "Next.js Route Handlers (`next start`)",
    "fastify": "Fastify, no logger",
    "arbor-app": "Arbor's reference app, `cargo run` defaults",
}
ENDPOINTS = {
    "hello": "`GET /api/hello`",
    "user": "`GET /api/users/42`",
    "post": "`POST /api/users` (validated JSON)",
    "stack": "`GET /api/stack` (four middleware)",
    "list": "the reference app's `GET /api/v1/users` (axum: `GET /api/users`), one page of users "
    "from SQLite for an administrator's bearer session",
}
# (numerator, denominator, what the ratio says): > 1 means the numerator serves more.
RATIOS = [
    ("arbor-bare", "axum-bare", "generated router vs hand-written axum, both bare"),
    ("arbor-stack", "axum-bare", "production stack vs bare axum"),
    ("arbor-stack", "axum-4mw", "production stack vs axum with the four naive middleware"),
    ("arbor-stack", "fastify", "production stack vs Fastify"),
    ("arbor-stack", "next", "production stack vs Next.js"),
    ("arbor-app", "axum-bare", "reference app vs hand-written axum + sqlx"),
]


def read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def thousands(x):
    return f"{x:,.0f}"


def cpu_per_request(row, mode):
    """The server's CPU time per request in µs, in `user` space or the kernel (`system`); NaN
    for runs recorded without it."""
    value = float(row.get(f"{mode}_us_per_request") or "nan")
    return value if value > 0 else float("nan")


def ratio_cells(by_pair, endpoints, a, b, value):
    """Per endpoint, the median of value(a) / value(b) round by round, with its range, or "—";
    None if there is no value at all."""
    cells, any_value = [], False
    for endpoint in endpoints:
        pa, pb = by_pair.get((endpoint, a), {}), by_pair.get((endpoint, b), {})
        pairs = [(value(pa[r]), value(pb[r])) for r in sorted(set(pa) & set(pb))]
        per_round = [x / y for x, y in pairs if y > 0 and not math.isnan(x)]
        if per_round:
            any_value = True
            cells.append(
                f"**{statistics.median(per_round):.3f}** "
                f"({min(per_round):.2f}–{max(per_round):.2f})"
            )
        else:
            cells.append("—")
    return cells if any_value else None


def ratio_table(caption, endpoints, rows):
    """A caption, then a table with a column per endpoint, as lines."""
    return [
        caption,
        "",
        "| ratio | " + " | ".join(endpoints) + " |",
        "|---|" + "---:|" * len(endpoints),
        *rows,
        "",
    ]


def main(results):
    results = Path(results)
    runs = read_tsv(results / "runs.tsv")
    memory = read_tsv(results / "rss.tsv")
    with open(results / "meta.tsv", newline="") as f:
        meta = {row[0]: row[1] for row in csv.reader(f, delimiter="\t")}

    # (endpoint, server) -> {round: row}
    by_pair = {}
    for row in runs:
        by_pair.setdefault((row["endpoint"], row["server"]), {})[int(row["round"])] = row
    endpoints = [e for e in ENDPOINTS if any(k[0] == e for k in by_pair)]
    rounds = max((int(row["round"]) for row in runs), default=0)

    warm = meta.get("warm_up", "?")
    warm_up = "no warm-up" if warm.rstrip("s") == "0" else f"a {warm} warm-up"

    out = []
    out.append(f"# Peer benchmark: results of {meta.get('date', '?')}")
    out.append("")
    out.append(
        f"Every server ran every endpoint it has for {meta.get('duration', '?')} in each of "
        f"{rounds} round{'' if rounds == 1 else 's'}, after {warm_up}: "
        f"`wrk -t1 -c{meta.get('connections', '?')} --latency`, servers on CPU "
        f"{meta.get('server_cpu', '?')}, wrk on CPU {meta.get('load_cpu', '?')}. "
        "Medians over the rounds."
    )
    out.append("")

    errors = any(int(row["socket_errors"]) for row in runs)
    header = ("| endpoint | server | req/s | p50 ms | p99 ms | user µs/req | kernel µs/req "
              "| req/s by round |")
    rule = "|---|---|---:|---:|---:|---:|---:|---|"
    if errors:
        header += " socket errors |"
        rule += "---:|"
    out += [header, rule]
    for endpoint in endpoints:
        for server in SERVERS:
            pair = by_pair.get((endpoint, server))
            if not pair:
                continue
            rows = [pair[r] for r in sorted(pair)]
            rps = statistics.median(float(r["rps"]) for r in rows)
            p50 = statistics.median(float(r["p50_ms"]) for r in rows)
            p99 = statistics.median(float(r["p99_ms"]) for r in rows)
            user = statistics.median(cpu_per_request(r, "user") for r in rows)
            system = statistics.median(cpu_per_request(r, "system") for r in rows)
            each = " ".join(thousands(float(r["rps"])) for r in rows)
            line = (
                f"| {endpoint} | {server} | {thousands(rps)} | {p50:.2f} | {p99:.2f} | "
                f"{user:.2f} | {system:.2f} | {each} |"
            )
            if errors:
                line += f" {sum(int(r['socket_errors']) for r in rows)} |"
            out.append(line)
    out.append("")

    ratio_rows, ratio_notes = [], []
    for a, b, what in RATIOS:
        rps_cells = ratio_cells(by_pair, endpoints, a, b, lambda row: float(row["rps"]))
        # The inverse of CPU time per request: above 1, the first server spends less.
        cpu_cells = ratio_cells(
            by_pair, endpoints, a, b, lambda row: 1 / cpu_per_request(row, "user")
        )
        if rps_cells:
            cpu_cells = cpu_cells or ["—"] * len(endpoints)
            ratio_rows.append((f"| {a} / {b} | " + " | ".join(rps_cells) + " |",
                               f"| {a} / {b} | " + " | ".join(cpu_cells) + " |"))
            ratio_notes.append(f"- {a} / {b}: {what}")
    if ratio_rows:
        out += ratio_table(
            "Ratios of requests per second: the median of the per-round ratios, and the lowest "
            "and highest of them. Above 1, the first server serves more.",
            endpoints,
            [rps for rps, _ in ratio_rows],
        )
        out += ratio_notes
        out.append("")
        out += ratio_table(
            "The same ratios by the servers' CPU time per request in user space (the second "
            "server's over the first's, so that above 1 the first spends less): the code each "
            "server runs, without the kernel's share (TCP on loopback, about 60 % of the "
            "total), which varies the most from run to run on a shared machine.",
            endpoints,
            [cpu for _, cpu in ratio_rows],
        )

    out.append("Memory of each server process (its children included), idle after start-up and "
               "the correctness check, and the highest sample under load (every 0.5 s):")
    out.append("")
    out.append("| process | measured as | idle RSS MiB | peak RSS MiB |")
    out.append("|---|---|---:|---:|")
    for row in memory:
        out.append(
            f"| {row['process']} | {row['serves']} | {int(row['idle_kib']) / 1024:.1f} | "
            f"{int(row['peak_kib']) / 1024:.1f} |"
        )
    out.append("")

    out.append("Endpoints:")
    out.append("")
    for endpoint in endpoints:
        out.append(f"- **{endpoint}**: {ENDPOINTS[endpoint]}")
    out.append("")

    out.append("Servers:")
    out.append("")
    for server in SERVERS:
        if any(k[1] == server for k in by_pair):
            out.append(f"- **{server}**: {ABOUT[server]}")
    out.append("")

    out.append("Machine and versions:")
    out.append("")
    out.append(f"- {meta.get('cpus', '?')} CPUs, {meta.get('cpu', '?')}")
    for key in ["rustc", "node", "wrk", "next", "fastify"]:
        if meta.get(key, "-") != "-":
            out.append(f"- {key}: {meta[key]}")
    out.append(f"- commit {meta.get('commit', '?')}")
    out.append(f"- arbor-stack request log: `ARBOR_REQUEST_LOG={meta.get('arbor_request_log', 'pair')}`")
    out.append(
        f"- list: {meta.get('seed_users', '?')} users, `{meta.get('list_query', '?')}`"
        if "list" in endpoints
        else "- list: not measured"
    )
    out.append("")
    out.append("Command:")
    out.append("")
    out.append("```sh")
    out.append(meta.get("command", "bash benches/peers/run.sh"))
    out.append("```")
    out.append("")

    text = "\n".join(out)
    (results / "latest.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
