#!/usr/bin/env bash
# Memory-safety check: runs the selector conformance suite and the poll/epoll end-to-end suites under
# valgrind's memcheck, following the iomux processes the end-to-end tests start (not curl, python or
# chromium), and fails on any memory error or definitely lost block in any of them. Big cases are
# scaled down with IOMUX_TEST_SCALE=small. Prints how long each suite and the whole run took.
#
#   scripts/valgrind.sh                # every suite below
#   scripts/valgrind.sh net runtime    # only these
#
# valgrind 3.19 (Debian 12) does not know epoll_pwait2 (syscall 441) and answers ENOSYS: the epoll
# backend falls back to epoll_wait, so its "unhandled syscall" warning is expected and harmless.
set -euo pipefail
cd "$(dirname "$0")/.."

# The suites, one line each: the package's folder, the test binary, then any arguments for it.
# Adding a suite is one line here. Left out: the cases that run out of fds under a low RLIMIT_NOFILE
# set with prlimit, which valgrind cannot follow (it keeps fds of its own above the soft limit, and
# every open then fails) and whose CPU time under valgrind would be valgrind's; and, in the command's
# end-to-end suites, the select variants (the poll and epoll ones run; each case starts servers under
# valgrind, so they also run two at a time), and the HTTP cases whose clients, slowed down in this
# process, outlast the server's 15 s keep-alive timeout between requests (several threads hashing
# 256 KiB bodies) or a fixed 5 s window (a pipelining client that never reads). Not run: http_alloc,
# whose allocation count depends on timing that valgrind changes. --fair-sched=yes keeps one test's
# threads from starving another's (valgrind runs one thread at a time).
suites=(
    "crates/iomux iomux"
    "crates/iomux conformance"
    "crates/iomux model"
    "crates/iomux regression"
    "crates/iomux event_loop"
    "crates/iomux event_loop_signals"
    "crates/iomux runtime"
    "crates/iomux net --skip accept_survives_fd_exhaustion_and_recovers"
    "crates/iomux http_core"
    "crates/iomux http_server"
    "crates/iomux echo"
    ". examples"
    ". client"
    ". load"
    ". echo --test-threads=2 --skip _select --skip fd_exhaustion_neither_spins_nor_kills_and_recovers"
    ". http --test-threads=2 --skip ::select --skip running_out_of_descriptors_pauses_accepting_without_spinning --skip slow_readers_and_concurrent_clients --skip two_workers_share_the_port --skip a_pipelining_client_that_never_reads"
)

if ! command -v valgrind >/dev/null; then
    echo "valgrind: not installed (Debian: apt-get install valgrind)" >&2
    exit 1
fi
start=$SECONDS
work=$(mktemp -d -t iomux-valgrind.XXXXXX)
trap 'rm -rf "$work"' EXIT
export IOMUX_TEST_SCALE=small

echo "valgrind: $(valgrind --version); building the test binaries"
cargo test --workspace --locked --no-run --message-format=json >"$work/build.json"
# "package-folder test-binary executable", for every test binary built (a library's unit tests are
# named after the library).
python3 - "$work/build.json" "$PWD" >"$work/binaries" <<'PY'
import json, os, sys
for line in open(sys.argv[1]):
    message = json.loads(line)
    if message.get("reason") != "compiler-artifact" or not message.get("executable"):
        continue
    if message["target"]["kind"] in (["test"], ["lib"]) and message["profile"]["test"]:
        folder = os.path.relpath(os.path.dirname(message["manifest_path"]), sys.argv[2])
        print(folder, message["target"]["name"], message["executable"])
PY

failed=0
for suite in "${suites[@]}"; do
    read -r -a words <<<"$suite"
    dir=${words[0]} name=${words[1]} arguments=("${words[@]:2}")
    if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then
        continue
    fi
    executable=$(awk -v dir="$dir" -v name="$name" \
        '$1 == dir && $2 == name { print $3 }' "$work/binaries")
    if [ -z "$executable" ]; then
        echo "valgrind: no test binary $name in the package at $dir" >&2
        exit 1
    fi
    logs=$work/logs/${dir//[\/.]/_}-$name
    mkdir -p "$logs"
    suite_start=$SECONDS
    status=0
    (cd "$dir" && timeout 1200 valgrind --error-exitcode=1 --errors-for-leak-kinds=definite \
        --leak-check=full --max-threads=2000 --fair-sched=yes --trace-children=yes \
        --trace-children-skip='*/curl,*/python*,*/chromium*,*/chrome*' \
        --log-file="$logs/%p.log" "$executable" -q "${arguments[@]}" >"$logs/test-output" 2>&1) || status=$?
    # Every process writes its own log: errors in a traced child need not fail the test itself.
    bad=$(grep -lE "ERROR SUMMARY: [1-9]" "$logs"/*.log || true)
    processes=$(find "$logs" -name '*.log' | wc -l)
    summary=$(grep -E "^test result:" "$logs/test-output" | tail -1 || true)
    if [ "$status" -ne 0 ] || [ -n "$bad" ]; then
        failed=1
        echo "valgrind $name: FAILED (exit $status) after $((SECONDS - suite_start)) s, $processes processes" >&2
        grep -E -A2 "panicked at" "$logs/test-output" | head -60 >&2 || true
        sed -n '/^failures:$/,$p' "$logs/test-output" | grep -E "^    " >&2 || tail -30 "$logs/test-output" >&2
        for log in $bad; do
            grep -vE "^==[0-9]+== *$" "$log" | head -60 >&2
        done
    else
        echo "valgrind $name: 0 errors in $processes processes, $((SECONDS - suite_start)) s; $summary"
    fi
done

echo "valgrind: took $((SECONDS - start)) s"
exit "$failed"
