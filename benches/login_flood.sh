#!/usr/bin/env bash
# A login flood against the reference app (release build): $LOGINS logins at once, each from
# its own address (through a trusted proxy's X-Forwarded-For, so the per-address login limit
# does not turn them away first), with the process's RSS sampled throughout. Each argon2 hash
# works in about 19 MB, from a pool of buffers no larger than the number of hashes that may run
# at once (one per core, ARBOR_PASSWORD_HASHING_CONCURRENCY); the logins past the bound wait up
# to a second, then get `503 BUSY`.
#
#   bash benches/login_flood.sh        # LOGINS=64
LOGINS=${LOGINS:-64}
source "$(dirname "$0")/lib.sh"
build_app

PORT=$(free_port)
start_app flood "$PORT" ARBOR_TRUSTED_PROXIES=127.0.0.1
PID=${PIDS[-1]}
BASE="http://127.0.0.1:$PORT"
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status" 2>/dev/null; }
START=$(rss_kib)
register "$PORT" >/dev/null # the first hash: the pool's first buffer
BEFORE=$(rss_kib)
( while kill -0 "$PID" 2>/dev/null; do rss_kib >>"$WORK/rss"; sleep 0.05; done ) &
PIDS+=($!)

clients=()
for i in $(seq "$LOGINS"); do
  curl -s -o /dev/null -w '%{http_code}\n' -H 'content-type: application/json' \
    -H "x-forwarded-for: 198.51.100.$i" \
    -d '{"email":"bench@example.com","password":"Str0ngPassword"}' \
    "$BASE/api/v1/login" >>"$WORK/statuses" &
  clients+=($!)
done
wait "${clients[@]}"
sleep 2
AFTER=$(rss_kib)
PEAK=$(sort -n "$WORK/rss" | tail -n 1)

echo "== $LOGINS logins at once"
sort "$WORK/statuses" | uniq -c | awk '{printf "%-28s %s\n", "status " $2, $1}'
printf '%-28s %s MiB\n' "RSS at start" "$(( START / 1024 ))"
printf '%-28s %s MiB\n' "RSS after one registration" "$(( BEFORE / 1024 ))"
printf '%-28s %s MiB\n' "RSS peak" "$(( PEAK / 1024 ))"
printf '%-28s %s MiB\n' "RSS 2 s after" "$(( AFTER / 1024 ))"
