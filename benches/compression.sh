#!/usr/bin/env bash
# What response compression costs and saves on a JSON list route of the reference app (release
# build), over TCP, with wrk: two instances on fresh SQLite databases holding the same 50 posts,
# one with ARBOR_COMPRESSION=off and one with compression on (the default), both asked for
# `GET /api/v1/posts?limit=50` (about 20 KB of JSON) with each Accept-Encoding in turn.
#
#   bash benches/compression.sh            # ROUNDS=5 DUR=5s CONN=32
#
# Servers on CPU $SERVER_CPU, wrk on CPU $LOAD_CPU; the two are measured in turn, round by
# round, alternating which goes first; the table gives the median requests/s of each, the
# median of the per-round ratios, and the bytes of one response body on the wire. Every answer
# must be a 2xx.
source "$(dirname "$0")/lib.sh"
install wrk:wrk
build_app

declare -A PORT
PORT[off]=$(free_port); start_app off "${PORT[off]}" ARBOR_COMPRESSION=off
PORT[on]=$(free_port); start_app on "${PORT[on]}" ARBOR_COMPRESSION=on

BODY=$(python3 -c 'print("Arbor compresses JSON lists on the way out. " * 5)')
for name in off on; do
  token=$(register "${PORT[$name]}")
  for i in $(seq 50); do
    curl -fs -o /dev/null -H "authorization: Bearer $token" -H 'content-type: application/json' \
      -d "{\"title\":\"post number $i\",\"body\":\"$BODY\"}" "http://127.0.0.1:${PORT[$name]}/api/v1/posts"
  done
done
ROUTE='/api/v1/posts?limit=50'

measure() { # $1 = server, $2 = Accept-Encoding: prints requests/s
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONN" -d"$DUR" -H "Accept-Encoding: $2" \
    "http://127.0.0.1:${PORT[$1]}$ROUTE" >"$WORK/wrk.out"
  if grep -q 'Non-2xx' "$WORK/wrk.out"; then
    echo "$1 $2: $(grep 'Non-2xx' "$WORK/wrk.out")" >&2
    exit 1
  fi
  awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out"
}

wire_bytes() { # $1 = server, $2 = Accept-Encoding
  curl -fs -o /dev/null -w '%{size_download}' -H "Accept-Encoding: $2" "http://127.0.0.1:${PORT[$1]}$ROUTE"
}

echo "== $ROUNDS rounds of $DUR per server and encoding, $CONN connections, alternating order"
printf '%-10s %9s %9s %8s %10s %10s\n' encoding off on 'on/off' 'bytes off' 'bytes on'
for encoding in identity gzip br zstd; do
  : >"$WORK/rps_off"; : >"$WORK/rps_on"; : >"$WORK/ratio"
  order=(off on)
  for round in $(seq "$ROUNDS"); do
    declare -A rps=()
    for name in "${order[@]}"; do rps[$name]=$(measure "$name" "$encoding"); echo "${rps[$name]}" >>"$WORK/rps_$name"; done
    python3 -c "print(${rps[on]} / ${rps[off]})" >>"$WORK/ratio"
    order=("${order[1]}" "${order[0]}")
  done
  printf '%-10s %9.0f %9.0f %8.3f %10d %10d\n' "$encoding" "$(median <"$WORK/rps_off")" \
    "$(median <"$WORK/rps_on")" "$(median <"$WORK/ratio")" \
    "$(wire_bytes off "$encoding")" "$(wire_bytes on "$encoding")"
done
