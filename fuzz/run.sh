#!/bin/sh
# Runs each fuzz target for a bounded time: `fuzz/run.sh [SECONDS] [TARGET...]` (default 60 s
# each, every target). Needs cargo-fuzz (`RUSTC_BOOTSTRAP=1 cargo install cargo-fuzz`); the
# stable toolchain is enough because RUSTC_BOOTSTRAP unlocks the nightly flags libFuzzer needs.
# The committed seeds are in fuzz/seeds/TARGET; what the fuzzer learns goes to fuzz/corpus/TARGET
# (not committed), and a failing input to fuzz/artifacts/TARGET, after which the script stops.
set -eu
cd "$(dirname "$0")"
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-resource search_params prefer type_filter fhirpath dispatch_get dispatch_write}
export RUSTC_BOOTSTRAP=1
for target in $targets; do
    mkdir -p "corpus/$target"
    echo "== $target: ${seconds}s"
    # No sanitizer: the code under test is safe Rust, and libFuzzer still catches panics,
    # stack overflows (-rss/-timeout for hangs and runaway memory).
    cargo fuzz run --sanitizer none "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1
done
