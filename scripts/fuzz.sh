#!/usr/bin/env bash
# Fuzzing: runs every cargo-fuzz target of fuzz/ for SECONDS_PER_TARGET seconds (default 30; CI uses
# the default) on a temporary copy of its committed seed corpus, and fails on the first crash, panic,
# hang (an input taking over 10 s) or memory blow-up. Prints the executions per target and how long
# the whole run took.
#
#   scripts/fuzz.sh            # the short form, 30 s per target
#   scripts/fuzz.sh 600        # a long form, 10 min per target
#
# Runs on the stable toolchain: with `--sanitizer none` cargo-fuzz passes only stable rustc flags
# (-Cpasses=sancov-module and LLVM's sanitizer-coverage options), so no nightly is needed; the targets
# are safe Rust and a panic is the crash. Builds keep debug assertions and overflow checks on.
# A crash leaves its input in fuzz/artifacts/<target>/ (reproduce with
# `cd fuzz && cargo fuzz run -s none <target> artifacts/<target>/<file>`); turn it into a regression
# test of the normal suite.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
case $seconds in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
    ;;
esac
cargo_fuzz_version=0.13.2
targets=(http_head path_confinement echo_upper)
start=$SECONDS

if ! cargo fuzz --version 2>/dev/null | grep -qF "cargo-fuzz $cargo_fuzz_version"; then
    echo "fuzz: installing cargo-fuzz $cargo_fuzz_version"
    cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi

work=$(mktemp -d -t iomux-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The targets make their document root under TMPDIR; it goes with $work.
mkdir "$work/tmp"
export TMPDIR=$work/tmp

cd fuzz
# Fails if fuzz/Cargo.lock is out of date (cargo fuzz has no --locked of its own).
cargo metadata --locked --format-version 1 >/dev/null
cargo fuzz build --sanitizer none

failed=0
for target in "${targets[@]}"; do
    corpus=$work/corpus/$target
    mkdir -p "$corpus" "artifacts/$target"
    cp corpus/"$target"/* "$corpus"/
    options=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="artifacts/$target/")
    case $target in
    http_head) options+=(-dict=http.dict -max_len=9000) ;;
    esac
    log=$work/$target.log
    target_start=$SECONDS
    if cargo fuzz run --sanitizer none "$target" "$corpus" -- "${options[@]}" >"$log" 2>&1; then
        result="no crash"
    else
        result="FAILED"
        failed=1
        grep -E -A12 "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | head -40 >&2 || tail -40 "$log" >&2
        grep -F "Test unit written to" "$log" >&2 || true
    fi
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    entries=$(find "$corpus" -type f | wc -l)
    echo "fuzz $target: ${executions:-?} executions in $((SECONDS - target_start)) s, corpus $(find "corpus/$target" -type f | wc -l) seeds -> $entries entries, $result"
done

echo "fuzz: took $((SECONDS - start)) s"
exit "$failed"
