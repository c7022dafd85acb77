#!/usr/bin/env bash
# Coverage-guided fuzzing of every target, one after the other, each for SECONDS (default 180),
# then the corpus of each minimized (`cargo fuzz cmin`) so that only inputs that add coverage
# are kept in the repository. Needs a nightly toolchain and cargo-fuzz:
#
#   rustup toolchain install nightly && cargo install cargo-fuzz
#   bash fuzz/run.sh                   # every target, 180 s each
#   SECONDS_EACH=600 bash fuzz/run.sh extractors multipart
#
# A failure (panic, sanitizer report) stops at once; libFuzzer writes the input that caused it
# under fuzz/artifacts/<target>/, and `cargo +nightly fuzz run <target> <that file>` replays it.
# Prints one line per target: runs, runs per second, coverage, corpus size, peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SECONDS_EACH:-180}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build -O >/dev/null
printf '%-20s %12s %8s %6s %8s %8s\n' target runs "runs/s" cov corpus "rss MB"
for target in "${targets[@]}"; do
    log=$(mktemp)
    if ! cargo +nightly fuzz run -O "$target" -- -max_total_time="$seconds" \
        -print_final_stats=1 >"$log" 2>&1; then
        echo "== $target FAILED; its output:" >&2
        tail -60 "$log" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
    done_line=$(grep -E '^#[0-9]+.*DONE' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
    rate=$(sed -n 's/.* exec\/s: \([0-9]*\).*/\1/p' <<<"$done_line")
    cargo +nightly fuzz cmin -O "$target" >/dev/null 2>&1
    corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
    printf '%-20s %12s %8s %6s %8s %8s\n' "$target" "$runs" "$rate" "$cov" "$corpus" "$rss"
    rm -f "$log"
done
