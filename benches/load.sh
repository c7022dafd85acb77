#!/usr/bin/env bash
# A sustained load on the reference app (release build, SQLite, in-memory stores), with its
# memory watched. In each of $PHASES phases, `wrk` keeps $CONN connections busy with a mix of
# routes for $DUR while $SSE clients hold event streams open and a loop uploads 1 MiB files;
# then $SETTLE seconds of quiet. Every answer must be what the route documents (no 4xx or
# 5xx). The process's RSS is sampled throughout: if what the load makes (rate-limit keys,
# cache entries, subscriptions, sessions) is bounded, the second phase ends where the first
# did instead of climbing further.
#
#   bash benches/load.sh        # PHASES=2 DUR=60s CONN=256 SSE=64 SETTLE=10
#
# The server runs on CPU $SERVER_CPU, the load on CPU $LOAD_CPU.
DUR=${DUR:-60s}; CONN=${CONN:-256}; SSE=${SSE:-64}; SETTLE=${SETTLE:-10}
source "$(dirname "$0")/lib.sh"
install wrk:wrk
build_app

PORT=$(free_port)
start_app load "$PORT"
PID=${PIDS[-1]}
BASE="http://127.0.0.1:$PORT"
TOKEN=$(register "$PORT")
seed_posts "$PORT" "$TOKEN"

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status" 2>/dev/null; }
# Warm up every route once (lazy set-up is not growth).
for path in /api/hello /api/v1/items/7 '/api/v1/posts?limit=10' /api/v1/docs/guide/intro; do
  curl -fs -o /dev/null "$BASE$path"
done
BEFORE=$(rss_kib)

cat >"$WORK/mix.lua" <<LUA
local token = "$TOKEN"
local n = 0
request = function()
  n = n + 1
  local k = n % 5
  if k == 0 then return wrk.format("GET", "/api/hello") end
  if k == 1 then return wrk.format("GET", "/api/v1/items/" .. n) end
  if k == 2 then return wrk.format("GET", "/api/v1/posts?limit=10", { ["authorization"] = "Bearer " .. token }) end
  if k == 3 then return wrk.format("GET", "/api/v1/docs/page/" .. (n % 50)) end
  return wrk.format("POST", "/api/hello", { ["content-type"] = "application/json" }, '{"name":"load ' .. n .. '"}')
end
LUA

# One phase: event-stream subscribers, an upload loop and the wrk mix, for $DUR; then quiet.
load_phase() { # $1 = phase number
  local clients=()
  for i in $(seq "$SSE"); do
    taskset -c "$LOAD_CPU" curl -sN -H "authorization: Bearer $TOKEN" -o /dev/null \
      --max-time "$(( ${DUR%s} + 2 ))" "$BASE/api/v1/events" &
    clients+=($!)
  done
  (
    end=$(( $(date +%s) + ${DUR%s} ))
    while [ "$(date +%s)" -lt "$end" ]; do
      taskset -c "$LOAD_CPU" curl -fs -o /dev/null -H "authorization: Bearer $TOKEN" \
        -F "file=@$WORK/upload.bin;type=application/octet-stream" "$BASE/api/v1/upload" \
        && echo ok >>"$WORK/uploads" || echo failed >>"$WORK/uploads"
    done
  ) &
  clients+=($!)
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONN" -d"$DUR" -s "$WORK/mix.lua" "$BASE" >"$WORK/wrk.$1.out"
  wait "${clients[@]}" || true # the subscribers (cut at $DUR + 2 s) and the upload loop
  if grep -q 'Non-2xx' "$WORK/wrk.$1.out"; then
    echo "error: answers outside 2xx/3xx: $(grep 'Non-2xx' "$WORK/wrk.$1.out")" >&2
    exit 1
  fi
  sleep "$SETTLE"
}

head -c 1048576 /dev/urandom >"$WORK/upload.bin"
# RSS every half second.
( while kill -0 "$PID" 2>/dev/null; do rss_kib >>"$WORK/rss"; sleep 0.5; done ) &
PIDS+=($!)
PHASES=${PHASES:-2}
for phase in $(seq "$PHASES"); do
  load_phase "$phase"
  AFTER[$phase]=$(rss_kib)
done
PEAK=$(sort -n "$WORK/rss" | tail -n 1)

cat "$WORK/wrk.1.out"
UPLOADS_OK=$(grep -c ok "$WORK/uploads" || true)
UPLOADS_FAILED=$(grep -c failed "$WORK/uploads" || true)
echo
for phase in $(seq "$PHASES"); do
  printf '%-30s %s\n' "phase $phase: requests/s" "$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.$phase.out")"
  printf '%-30s %s\n' "phase $phase: requests" "$(awk '/requests in/ {print $1}' "$WORK/wrk.$phase.out")"
  printf '%-30s %s\n' "phase $phase: socket errors" "$(grep 'Socket errors' "$WORK/wrk.$phase.out" || echo none)"
done
printf '%-30s %s ok, %s failed\n' "uploads of 1 MiB" "$UPLOADS_OK" "$UPLOADS_FAILED"
printf '%-30s %s per phase\n' "event streams held" "$SSE"
printf '%-30s %s MiB\n' "RSS before" "$(( BEFORE / 1024 ))"
printf '%-30s %s MiB\n' "RSS peak" "$(( PEAK / 1024 ))"
for phase in $(seq "$PHASES"); do
  printf '%-30s %s MiB\n' "RSS ${SETTLE}s after phase $phase" "$(( AFTER[phase] / 1024 ))"
done
[ "$UPLOADS_FAILED" -eq 0 ] || { echo "error: uploads failed" >&2; exit 1; }
