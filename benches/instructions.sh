#!/usr/bin/env bash
# Instructions per request of each configuration of an in-process benchmark, counted by
# callgrind: deterministic, so small changes show where timings drown in noise.
#
#   bash benches/instructions.sh                  # framework/benches/middleware_cost.rs
#   BENCH=routing_scale bash benches/instructions.sh
#
# Each configuration runs twice (2,000 and 12,000 requests); the difference divided by 10,000 is
# its cost per request, start-up and set-up cancelled out.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-middleware_cost}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
binary=$(cargo bench -p arbor --bench "$BENCH" --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$BENCH")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
count() { # config requests
  BENCH_ONLY=$1 BENCH_REQUESTS=$2 valgrind --tool=callgrind --callgrind-out-file="$out/cg" \
    "$binary" >/dev/null 2>"$out/log"
  awk '/Collected/ {print $4}' "$out/log"
}
printf '%-14s %12s\n' configuration instructions
for config in $("$binary" --list); do
  short=$(count "$config" 2000)
  long=$(count "$config" 12000)
  printf '%-14s %12d\n' "$config" $(( (long - short) / 10000 ))
done
