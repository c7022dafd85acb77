#!/usr/bin/env python3
"""Draws RESULTS/chart.svg from RESULTS/runs.tsv (and meta.tsv), as run.sh records them: one
panel per endpoint, one horizontal bar per server, the median requests per second over the
rounds written at the end of each bar. Each panel has its own scale (a database list and an
empty route differ by an order of magnitude); a server keeps its colour in every panel.
Standard library only.

    python3 chart.py benches/peers/results
"""

import csv
import statistics
import sys
from pathlib import Path
from xml.sax.saxutils import escape

from report import SERVERS  # the order of the servers, shared with the table
COLOURS = {
    "arbor-stack": "#1f6f43",
    "arbor-bare": "#5fb37f",
    "arbor-app": "#0f4c5c",
    "axum-bare": "#c2571a",
    "axum-4mw": "#e8a23a",
    "fastify": "#6b4fbb",
    "next": "#555f6e",
}
ENDPOINTS = {
    "hello": "GET /api/hello",
    "user": "GET /api/users/42 (dynamic segment)",
    "post": "POST /api/users (validated JSON body)",
    "stack": "GET /api/stack (behind four middleware)",
    "list": "GET users list, one page of 20 (SQLite, bearer session)",
}

WIDTH = 760
LABEL_W = 110  # server names, right-aligned before the bars
BAR_MAX = 500  # the longest bar of a panel
BAR_H = 18
BAR_GAP = 6
PANEL_TITLE_H = 26
PANEL_GAP = 18
TOP = 62
FONT = "font-family=\"-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif\""


def main(results):
    results = Path(results)
    with open(results / "runs.tsv", newline="") as f:
        runs = list(csv.DictReader(f, delimiter="\t"))
    meta = {}
    if (results / "meta.tsv").exists():
        with open(results / "meta.tsv", newline="") as f:
            meta = {r[0]: r[1] for r in csv.reader(f, delimiter="\t")}

    rps = {}
    for row in runs:
        rps.setdefault((row["endpoint"], row["server"]), []).append(float(row["rps"]))
    rounds = max((int(row["round"]) for row in runs), default=0)

    parts, y = [], TOP
    for endpoint, title in ENDPOINTS.items():
        bars = [(s, statistics.median(rps[(endpoint, s)])) for s in SERVERS if (endpoint, s) in rps]
        if not bars:
            continue
        top = max(value for _, value in bars) or 1
        parts.append(
            f'<text x="{LABEL_W + 10}" y="{y + 16}" font-size="14" font-weight="600" '
            f'fill="#222">{escape(title)}</text>'
        )
        y += PANEL_TITLE_H
        for server, value in bars:
            length = max(1.0, BAR_MAX * value / top)
            parts.append(
                f'<text x="{LABEL_W}" y="{y + BAR_H - 5}" font-size="12" text-anchor="end" '
                f'fill="#333">{escape(server)}</text>'
            )
            parts.append(
                f'<rect x="{LABEL_W + 10}" y="{y}" width="{length:.1f}" height="{BAR_H}" rx="2" '
                f'fill="{COLOURS[server]}"><title>{escape(server)}: {value:,.0f} req/s</title></rect>'
            )
            parts.append(
                f'<text x="{LABEL_W + 16 + length:.1f}" y="{y + BAR_H - 5}" font-size="12" '
                f'fill="#222">{value:,.0f}</text>'
            )
            y += BAR_H + BAR_GAP
        y += PANEL_GAP

    settings = (
        f"median of {rounds} rounds of {meta.get('duration', '?')}, "
        f"wrk -t1 -c{meta.get('connections', '?')}, server on one CPU; each panel has its own scale"
    )
    machine = ", ".join(
        v for v in [meta.get("date"), meta.get("cpu"), f"{meta.get('cpus', '?')} CPUs"] if v
    )
    height = y + 10
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" {FONT}>',
        f'<rect width="{WIDTH}" height="{height}" fill="#fff"/>',
        f'<text x="{LABEL_W + 10}" y="24" font-size="17" font-weight="700" fill="#111">'
        "Requests per second, higher is better</text>",
        f'<text x="{LABEL_W + 10}" y="44" font-size="12" fill="#555">'
        f"{escape(settings)}; {escape(machine)}</text>",
        *parts,
        "</svg>",
    ]
    (results / "chart.svg").write_text("\n".join(svg) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
