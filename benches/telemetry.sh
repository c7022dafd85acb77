#!/usr/bin/env bash
# The cost of metrics and of trace export on the reference app (release build), over TCP, with
# wrk: four instances on fresh SQLite databases, one with ARBOR_METRICS=off, one with metrics
# (the default), one with metrics and OTEL_EXPORTER_OTLP_ENDPOINT pointing at an OTLP/HTTP
# receiver on loopback (a small Python server that reads and drops what it is sent), and the
# same sampling one trace in ten (OTEL_TRACES_SAMPLER=parentbased_traceidratio, ARG=0.1).
#
#   bash benches/telemetry.sh            # ROUNDS=5 DUR=5s CONN=32
#
# Servers on CPU $SERVER_CPU, wrk on CPU $LOAD_CPU; the four are measured in turn, round by
# round, in a rotating order; the table gives the median requests/s of each and the medians of
# the per-round ratios to the instance without telemetry. Every answer must be a 2xx.
source "$(dirname "$0")/lib.sh"
install wrk:wrk
build_app

OTLP_PORT=$(free_port)
cat >"$WORK/receiver.py" <<'PY'
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()
PY
python3 "$WORK/receiver.py" "$OTLP_PORT" &
PIDS+=($!)

declare -A PORT
PORT[off]=$(free_port); start_app off "${PORT[off]}" ARBOR_METRICS=off
PORT[metrics]=$(free_port); start_app metrics "${PORT[metrics]}" ARBOR_METRICS=on
PORT[traces]=$(free_port); start_app traces "${PORT[traces]}" ARBOR_METRICS=on \
  OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" OTEL_SERVICE_NAME=bench
PORT[sampled]=$(free_port); start_app sampled "${PORT[sampled]}" ARBOR_METRICS=on \
  OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" OTEL_SERVICE_NAME=bench \
  OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1

for name in off metrics traces sampled; do
  seed_posts "${PORT[$name]}" "$(register "${PORT[$name]}")"
done

measure() { # $1 = server, $2 = path: prints requests/s
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONN" -d"$DUR" "http://127.0.0.1:${PORT[$1]}$2" >"$WORK/wrk.out"
  if grep -q 'Non-2xx' "$WORK/wrk.out"; then
    echo "$1 $2: $(grep 'Non-2xx' "$WORK/wrk.out")" >&2
    exit 1
  fi
  awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out"
}

echo "== $ROUNDS rounds of $DUR per server and endpoint, $CONN connections, rotating order"
printf '%-26s %9s %9s %9s %9s %8s %8s %8s\n' endpoint off metrics traces sampled 'm/off' 't/off' 's/off'
for path in /api/hello '/api/v1/posts?limit=10'; do
  for name in off metrics traces sampled; do : >"$WORK/rps_$name"; done
  : >"$WORK/ratio_m"; : >"$WORK/ratio_t"; : >"$WORK/ratio_s"
  order=(off metrics traces sampled)
  for round in $(seq "$ROUNDS"); do
    declare -A rps=()
    for name in "${order[@]}"; do rps[$name]=$(measure "$name" "$path"); echo "${rps[$name]}" >>"$WORK/rps_$name"; done
    python3 -c "print(${rps[metrics]} / ${rps[off]})" >>"$WORK/ratio_m"
    python3 -c "print(${rps[traces]} / ${rps[off]})" >>"$WORK/ratio_t"
    python3 -c "print(${rps[sampled]} / ${rps[off]})" >>"$WORK/ratio_s"
    order=("${order[@]:1}" "${order[0]}")
  done
  printf '%-26s %9.0f %9.0f %9.0f %9.0f %8.3f %8.3f %8.3f\n' "$path" "$(median <"$WORK/rps_off")" \
    "$(median <"$WORK/rps_metrics")" "$(median <"$WORK/rps_traces")" "$(median <"$WORK/rps_sampled")" \
    "$(median <"$WORK/ratio_m")" "$(median <"$WORK/ratio_t")" "$(median <"$WORK/ratio_s")"
done
