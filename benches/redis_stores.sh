#!/usr/bin/env bash
# Redis stores vs in-memory stores, on the reference app (release build), with wrk.
# Redis is not pinned: on a 2-core machine it shares the cores with the server and wrk.
#
#   bash benches/redis_stores.sh            # ROUNDS=5 DUR=5s CONN=32
#
# Starts a throwaway redis-server on loopback (apt-installs redis-server and wrk if missing),
# then two instances of the app on fresh SQLite databases: one with in-memory stores, one with
# REDIS_URL. The servers run on CPU $SERVER_CPU, wrk on CPU $LOAD_CPU. For each endpoint, the
# two servers are measured alternately, round by round; the table gives the median requests/s
# of each and the median of the per-round ratios (Redis / memory). It also counts the Redis
# commands one rate-limit decision costs (INFO commandstats around a burst of logins).
source "$(dirname "$0")/lib.sh"
install redis-server:redis-server wrk:wrk
build_app

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done

MEM_PORT=$(free_port); start_app memory "$MEM_PORT"
RED_PORT=$(free_port); start_app redis "$RED_PORT" REDIS_URL="redis://127.0.0.1:$REDIS_PORT"

declare -A TOKEN=([memory]=$(register "$MEM_PORT") [redis]=$(register "$RED_PORT"))
declare -A PORT=([memory]=$MEM_PORT [redis]=$RED_PORT)
for name in memory redis; do seed_posts "${PORT[$name]}" "${TOKEN[$name]}"; done

cat >"$WORK/idempotent_post.lua" <<'LUA'
-- POST /api/v1/posts with a new Idempotency-Key each time: a database insert, a claim and a
-- record in the idempotency store.
local counter = 0
local run = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))
request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = "bench-" .. run .. "-" .. counter
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
  return wrk.format("POST", "/api/v1/posts", nil, '{"title":"bench","body":"b"}')
end
LUA

measure() { # $1 = server, $2 = endpoint: prints requests/s
  local name=$1 endpoint=$2 url="http://127.0.0.1:${PORT[$1]}" args=()
  case $endpoint in
    posts_list) args=("$url/api/v1/posts?limit=10") ;;
    cache_hit) args=("$url/api/v1/docs/guide/intro") ;;
    idempotent_post) args=(-s "$WORK/idempotent_post.lua" "$url") ;;
  esac
  BENCH_TOKEN=${TOKEN[$name]} taskset -c "$LOAD_CPU" wrk -t1 -c"$CONN" -d"$DUR" "${args[@]}" \
    >"$WORK/wrk.out"
  # Every answer must be a success: a store answering 503 would make a fast, wrong figure.
  if grep -q 'Non-2xx' "$WORK/wrk.out"; then
    echo "$name $endpoint: $(grep 'Non-2xx' "$WORK/wrk.out")" >&2
    exit 1
  fi
  awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out"
}

echo "== $ROUNDS rounds of $DUR per server and endpoint, $CONN connections, alternating"
printf '%-16s %12s %12s %8s\n' endpoint memory redis ratio
for endpoint in posts_list cache_hit; do
  : >"$WORK/mem" ; : >"$WORK/red" ; : >"$WORK/ratio"
  for round in $(seq "$ROUNDS"); do
    if (( round % 2 )); then m=$(measure memory "$endpoint"); r=$(measure redis "$endpoint")
    else r=$(measure redis "$endpoint"); m=$(measure memory "$endpoint"); fi
    echo "$m" >>"$WORK/mem"; echo "$r" >>"$WORK/red"
    python3 -c "print($r / $m)" >>"$WORK/ratio"
  done
  printf '%-16s %12.0f %12.0f %8.3f\n' "$endpoint" "$(median <"$WORK/mem")" "$(median <"$WORK/red")" \
    "$(median <"$WORK/ratio")"
done

# The in-memory idempotency store is bounded (10,000 live keys by default) and refuses new keys
# with 503 once full, which a run of unique keys reaches in seconds: only Redis is measured.
echo "== POST /api/v1/posts with a new Idempotency-Key each time (Redis only), $DUR"
echo "redis idempotent_post: $(measure redis idempotent_post) requests/s"

echo "== Redis commands per rate-limit decision (POST /api/v1/login, 5 per minute)"
redis-cli -p "$REDIS_PORT" config resetstat >/dev/null
DECISIONS=20
for _ in $(seq "$DECISIONS"); do
  curl -s -o /dev/null -H 'content-type: application/json' \
    -d '{"email":"nobody@example.com","password":"wrong-password"}' "http://127.0.0.1:$RED_PORT/api/v1/login"
done
STATS=$(redis-cli -p "$REDIS_PORT" info commandstats)
# Round trips are the commands the app sends: EVALSHA (EVAL the first time). The TIME, GET and
# SET in the list run inside the script, on the server, in the same round trip.
TRIPS=$(grep -E 'cmdstat_(evalsha|eval):' <<<"$STATS" | grep -o 'calls=[0-9]*' | cut -d= -f2 | paste -sd+ | bc)
echo "$DECISIONS decisions: $TRIPS round trips ($(python3 -c "print($TRIPS / $DECISIONS)") per decision)"
grep 'cmdstat_' <<<"$STATS" | grep -v -E 'cmdstat_(info|config)' | sed 's/^/  /'
