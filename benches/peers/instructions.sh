#!/usr/bin/env bash
# Instructions per request of the peer servers over real TCP, counted by callgrind: the
# deterministic companion of run.sh, whose requests per second swing by ±15% on a shared machine.
#
#   bash benches/peers/instructions.sh          # after run.sh has built target/peers
#   ONLY=/api/stack bash benches/peers/instructions.sh    # the rows whose label contains it
#
# Each configuration is started under valgrind twice and sent 2,000 and then 12,000 requests
# (`GET`s, or the peers' `POST` of a valid user) over one keep-alive connection; the difference
# divided by 10,000 is its cost per request, start-up and shutdown cancelled out. Everything
# the process does counts (hyper, tokio, the allocator, the log writer's thread), but not the
# kernel.
set -euo pipefail
cd "$(dirname "$0")/../.."
PEERS=${PEER_TARGET:-target/peers}/release
for binary in arbor-peer axum-peer; do
  [[ -x $PEERS/$binary ]] || { echo "no $PEERS/$binary: run benches/peers/run.sh first" >&2; exit 1; }
done
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Total instructions of one server run that answered `count` requests to `path`.
count() { # count path binary env...
  local requests=$1 path=$2 binary=$3; shift 3
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  env PORT="$port" HOST=127.0.0.1 "$@" valgrind --tool=callgrind \
    --callgrind-out-file="$out/callgrind.out" "$binary" >"$out/server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 300); do
    # Any answer (a POST route answers a GET with 405) means the server is up.
    curl -s -o /dev/null "http://127.0.0.1:$port$path" && break
    sleep 0.1
  done
  BODY=${BODY:-} python3 - "$port" "$requests" "$path" <<'PY'
import os, socket, sys
port, count, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
connection = socket.create_connection(("127.0.0.1", port))
body = os.environ["BODY"]
if body:
    request = (f"POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
               f"content-length: {len(body)}\r\n\r\n{body}").encode()
else:
    request = f"GET {path} HTTP/1.1\r\nhost: bench\r\n\r\n".encode()
for _ in range(count):
    connection.sendall(request)
    answer = b""
    # Every measured answer is a small JSON object with a Content-Length: read to its end.
    while not answer.endswith(b"}"):
        chunk = connection.recv(65536)
        if not chunk:
            sys.exit("the server closed the connection")
        answer += chunk
connection.close()
PY
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  callgrind_annotate "$out/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}

measure() { # label path binary env...
  local label=$1; shift
  [[ $label == *"${ONLY:-}"* ]] || return 0
  local short long
  short=$(count 2000 "$@")
  long=$(count 12000 "$@")
  printf '%-44s %8d\n' "$label" $(( (long - short) / 10000 ))
}

printf '%-44s %8s\n' "server, request" "instr/req"
measure "axum-bare, /api/hello" /api/hello "$PEERS/axum-peer"
measure "arbor-bare, /api/hello" /api/hello "$PEERS/arbor-peer" ARBOR_PEER_MODE=bare
measure "axum-bare, /api/users/42" /api/users/42 "$PEERS/axum-peer"
measure "arbor-bare, /api/users/42" /api/users/42 "$PEERS/arbor-peer" ARBOR_PEER_MODE=bare
# The peers' valid user, as benches/peers/post_user.lua sends it.
USER_JSON='{"email":"a@b.co","name":"Alice","password":"Secret123"}'
BODY=$USER_JSON measure "axum-bare, POST /api/users" /api/users "$PEERS/axum-peer"
BODY=$USER_JSON measure "arbor-bare, POST /api/users" /api/users "$PEERS/arbor-peer" \
  ARBOR_PEER_MODE=bare
measure "arbor-stack, no log output, /api/hello" /api/hello "$PEERS/arbor-peer" \
  ARBOR_LOG_FORMAT=json RUST_LOG=warn
for part in compression timeout openapi; do
  measure "arbor-stack, no log output, without $part" /api/hello "$PEERS/arbor-peer" \
    ARBOR_LOG_FORMAT=json RUST_LOG=warn ARBOR_PEER_WITHOUT=$part
done
measure "arbor-stack, JSON logs, /api/hello" /api/hello "$PEERS/arbor-peer" \
  ARBOR_LOG_FORMAT=json RUST_LOG=info
measure "arbor-stack, access line, /api/hello" /api/hello "$PEERS/arbor-peer" \
  ARBOR_LOG_FORMAT=json RUST_LOG=info ARBOR_REQUEST_LOG=access
measure "axum-4mw, /api/stack" /api/stack "$PEERS/axum-peer"
measure "arbor-stack, JSON logs, /api/stack" /api/stack "$PEERS/arbor-peer" \
  ARBOR_LOG_FORMAT=json RUST_LOG=info
measure "arbor-stack, access line, /api/stack" /api/stack "$PEERS/arbor-peer" \
  ARBOR_LOG_FORMAT=json RUST_LOG=info ARBOR_REQUEST_LOG=access
