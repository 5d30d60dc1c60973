#!/usr/bin/env bash
# Soak: runs `iomux http` (on a temporary root with small and large files) and `iomux echo`, release
# builds, under bounded mixed load for SECONDS (default 600; CI runs 60) — wrk with a mix of small,
# large, ranged and conditional requests against http, `iomux load echo` against echo, and a client
# injecting resets (partial requests and data, then SO_LINGER 0) into both at a bounded rate — then
# checks: each server's RSS is at most its post-warm-up value + max(10 %, 8 MiB); its fd count is back
# to its start (/proc/PID/fd); no request failed that should have succeeded (wrk: no non-2xx/3xx
# status, no socket error; iomux load: 0 errors; the reset client: every connect and every partial
# read it needed worked); both still answer (curl, an echo round trip); both exit 0 on SIGTERM.
# Prints the figures; exits 1 on any failed check, 2 on a usage error. Installs Debian's wrk when it
# is missing (needs root). Everything is bounded in time; only the processes it started are stopped,
# by PID, on exit.
#
# Usage: scripts/soak.sh [SECONDS]   (SECONDS >= 20)
# Environment: SOAK_HTTP_FLAGS (default "--workers 2"), SOAK_ECHO_FLAGS (default "--workers 2"),
# SOAK_CONNECTIONS (wrk's and iomux load's connections each, default 8), SOAK_RESET_RATE (resets
# per second, default 20).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-600}
if ! [[ $duration =~ ^[0-9]+$ ]] || [ "$duration" -lt 20 ] || [ "$duration" -gt 86400 ]; then
    echo "usage: scripts/soak.sh [SECONDS]   (a whole number of seconds, 20 to 86400; default 600)" >&2
    exit 2
fi
read -ra http_flags <<<"${SOAK_HTTP_FLAGS:---workers 2}"
read -ra echo_flags <<<"${SOAK_ECHO_FLAGS:---workers 2}"
connections=${SOAK_CONNECTIONS:-8}
reset_rate=${SOAK_RESET_RATE:-20}
# The warm-up: a tenth of the run, 5 to 60 s; the RSS reference is taken at its end.
warmup=$((duration / 10))
[ "$warmup" -ge 5 ] || warmup=5
[ "$warmup" -le 60 ] || warmup=60
# How long the servers get to close every connection after the load (the keep-alive timeout is 15 s).
settle=30

say() { echo "soak: $*"; }
failures=()
check() {
    # check DESCRIPTION CONDITION...: records a failure unless the condition holds.
    local what=$1
    shift
    if "$@"; then
        say "ok: $what"
    else
        say "FAILED: $what"
        failures+=("$what")
    fi
}

if ! command -v wrk >/dev/null; then
    say "installing Debian's wrk"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "soak: $tool is needed" >&2; exit 1; }
done

say "building the release binary (if needed)"
cargo build --release --locked --quiet --bin iomux
iomux=${CARGO_TARGET_DIR:-target}/release/iomux

work=$(mktemp -d)
# The processes started here and not yet reaped: the only ones ever signalled.
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
# reap PID: waits for a process started here, sets $reaped to its exit status and forgets its PID
# (so a PID the system reuses later is never signalled).
reap() {
    reaped=0
    wait "$1" || reaped=$?
    local kept=() pid
    for pid in "${pids[@]}"; do
        [ "$pid" = "$1" ] || kept+=("$pid")
    done
    pids=("${kept[@]}")
}

# The document root: small files, a 64 KiB one (sent with its head) and a 4 MiB one (sendfile).
root=$work/root
mkdir -p "$root/sub"
printf '<!doctype html><title>soak</title><h1>soak</h1>\n' >"$root/index.html"
head -c 1000 /dev/urandom | base64 >"$root/small.txt"
printf 'sub\n' >"$root/sub/index.html"
head -c 65536 /dev/urandom >"$root/medium.bin"
head -c $((4 << 20)) /dev/urandom >"$root/large.bin"

# first_line NAME: waits (at most 30 s) for the first line of $work/NAME.out and prints it.
first_line() {
    local waited=0
    until [ -s "$work/$1.out" ] && head -n 1 "$work/$1.out" | grep -q ")$"; do
        sleep 0.1
        waited=$((waited + 1))
        if [ "$waited" -ge 300 ]; then
            echo "soak: $1 printed no listening line; stderr: $(cat "$work/$1.err")" >&2
            exit 1
        fi
    done
    head -n 1 "$work/$1.out"
}

"$iomux" http "$root" --port 0 --quiet "${http_flags[@]}" >"$work/http.out" 2>"$work/http.err" &
http_pid=$!
pids+=("$http_pid")
"$iomux" echo --port 0 "${echo_flags[@]}" >"$work/echo.out" 2>"$work/echo.err" &
echo_pid=$!
pids+=("$echo_pid")
http_line=$(first_line http)
echo_line=$(first_line echo)
http_port=$(sed -E 's#^iomux http: listening on http://127\.0\.0\.1:([0-9]+)/ .*#\1#' <<<"$http_line")
echo_port=$(sed -E 's#^iomux echo: listening on tcp://127\.0\.0\.1:([0-9]+) .*#\1#' <<<"$echo_line")
[[ $http_port =~ ^[0-9]+$ && $echo_port =~ ^[0-9]+$ ]] || {
    echo "soak: unexpected listening lines: $http_line / $echo_line" >&2
    exit 1
}
say "$http_line"
say "$echo_line"

fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
cpu_seconds() {
    # utime + stime (fields 14 and 15 of stat(5), counted after the parenthesised command name).
    local ticks
    ticks=$(sed -E 's/^.*\) //' "/proc/$1/stat" | awk '{ print $12 + $13 }')
    awk -v ticks="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", ticks / hz }'
}
http_fds_start=$(fds "$http_pid")
echo_fds_start=$(fds "$echo_pid")
http_rss_start=$(rss_kib "$http_pid")
echo_rss_start=$(rss_kib "$echo_pid")

# wrk's mix: small files, the index, a directory's index, 64 KiB, 4 MiB, a range of the large file,
# and conditional requests answered 304. Every answer is 2xx or 3xx; `done` prints one parseable line.
cat >"$work/mix.lua" <<'EOF'
local since = os.date("!%a, %d %b %Y %H:%M:%S GMT")
local plain = { "/small.txt", "/small.txt", "/small.txt", "/index.html", "/", "/sub/", "/medium.bin", "/large.bin" }
request = function()
    local pick = math.random(10)
    if pick <= #plain then
        return wrk.format("GET", plain[pick])
    elseif pick == 9 then
        return wrk.format("GET", "/large.bin", { ["Range"] = "bytes=1000-300000" })
    else
        return wrk.format("GET", "/small.txt", { ["If-Modified-Since"] = since })
    end
end
done = function(summary, latency, requests)
    io.write(string.format(
        "wrk-summary requests=%d bytes=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p99_us=%d\n",
        summary.requests, summary.bytes, summary.duration, summary.errors.connect, summary.errors.read,
        summary.errors.write, summary.errors.status, summary.errors.timeout, latency:percentile(99)))
end
EOF

# The reset injector: at RATE connections per second, picks a way to misbehave and resets
# (SO_LINGER 0). Prints one JSON line; a connect or a read it needed that fails is an error.
cat >"$work/resets.py" <<'EOF'
import json, os, random, socket, struct, sys, time

http_port, echo_port, duration, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rng = random.Random(5)
counts, errors, first_error = {}, 0, None


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def request(path):
    return f"GET {path} HTTP/1.1\r\nHost: soak\r\n\r\n".encode()


def read_at_least(sock, count):
    got = 0
    while got < count:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"closed after {got} of {count} bytes")
        got += len(chunk)


def http_partial_head():
    sock = connect(http_port)
    sock.sendall(b"GET /small.txt HTTP/1.1\r\nHost: soak\r\nUser-Ag")
    time.sleep(rng.random() * 0.05)
    reset(sock)


def http_mid_response():
    sock = connect(http_port)
    sock.sendall(request("/large.bin"))
    read_at_least(sock, rng.choice([1, 4096, 65536, 300000]))
    reset(sock)


def http_before_reading():
    sock = connect(http_port)
    sock.sendall(request(rng.choice(["/small.txt", "/medium.bin", "/large.bin"])))
    reset(sock)


def http_pipelined_unread():
    sock = connect(http_port)
    sock.sendall(request("/medium.bin") * 16 + request("/small.txt") * 16)
    time.sleep(rng.random() * 0.05)
    reset(sock)


def http_connect_only():
    reset(connect(http_port))


def echo_unread():
    sock = connect(echo_port)
    sock.setblocking(False)
    data = os.urandom(65536)
    try:
        for _ in range(16):
            sock.send(data)
    except BlockingIOError:
        pass
    reset(sock)


def echo_mid_exchange():
    sock = connect(echo_port)
    data = os.urandom(rng.choice([1, 100, 10000]))
    sock.sendall(data)
    read_at_least(sock, len(data))
    sock.sendall(data)
    reset(sock)


def echo_connect_only():
    reset(connect(echo_port))


kinds = [http_partial_head, http_mid_response, http_before_reading, http_pipelined_unread,
         http_connect_only, echo_unread, echo_mid_exchange, echo_connect_only]
start = time.monotonic()
deadline = start + duration
done = 0
while time.monotonic() < deadline:
    kind = rng.choice(kinds)
    try:
        kind()
        counts[kind.__name__] = counts.get(kind.__name__, 0) + 1
    except Exception as error:  # any failure of the servers' side is reported, not raised
        errors += 1
        first_error = first_error or f"{kind.__name__}: {error!r}"
    done += 1
    pause = start + done / rate - time.monotonic()
    if pause > 0:
        time.sleep(pause)
print(json.dumps({"resets": sum(counts.values()), "kinds": counts, "errors": errors,
                  "first_error": first_error}))
EOF

say "load for ${duration} s (warm-up ${warmup} s): wrk -c $connections, iomux load echo -c $connections, $reset_rate resets/s"
limit=$((duration + 60))
timeout "$limit" wrk -t 1 -c "$connections" -d "${duration}s" --timeout 10s -s "$work/mix.lua" \
    "http://127.0.0.1:$http_port/" >"$work/wrk.out" 2>&1 &
wrk_pid=$!
pids+=("$wrk_pid")
timeout "$limit" "$iomux" load echo "127.0.0.1:$echo_port" -c "$connections" -d "$duration" --size 512 --json \
    >"$work/load.out" 2>"$work/load.err" &
load_pid=$!
pids+=("$load_pid")
timeout "$limit" python3 "$work/resets.py" "$http_port" "$echo_port" "$duration" "$reset_rate" \
    >"$work/resets.out" 2>"$work/resets.err" &
resets_pid=$!
pids+=("$resets_pid")

sleep "$warmup"
http_rss_warm=$(rss_kib "$http_pid")
echo_rss_warm=$(rss_kib "$echo_pid")
say "after the warm-up: http RSS ${http_rss_warm} KiB, echo RSS ${echo_rss_warm} KiB"
# Samples every second until the load ends, for the peaks.
http_rss_peak=$http_rss_warm
echo_rss_peak=$echo_rss_warm
http_fds_peak=0
echo_fds_peak=0
while kill -0 "$wrk_pid" 2>/dev/null || kill -0 "$load_pid" 2>/dev/null || kill -0 "$resets_pid" 2>/dev/null; do
    for name in http echo; do
        pid_var=${name}_pid
        rss=$(rss_kib "${!pid_var}" 2>/dev/null || echo 0)
        fd=$(fds "${!pid_var}" 2>/dev/null || echo 0)
        peak_var=${name}_rss_peak
        [ "$rss" -le "${!peak_var}" ] || printf -v "$peak_var" '%s' "$rss"
        peak_var=${name}_fds_peak
        [ "$fd" -le "${!peak_var}" ] || printf -v "$peak_var" '%s' "$fd"
    done
    sleep 1
done
reap "$wrk_pid"
wrk_status=$reaped
reap "$load_pid"
load_status=$reaped
reap "$resets_pid"
resets_status=$reaped

http_alive=yes
echo_alive=yes
kill -0 "$http_pid" 2>/dev/null || http_alive=no
kill -0 "$echo_pid" 2>/dev/null || echo_alive=no
check "iomux http is running after the load" [ "$http_alive" = yes ]
check "iomux echo is running after the load" [ "$echo_alive" = yes ]
if [ "$http_alive" = no ] || [ "$echo_alive" = no ]; then
    say "http stderr: $(cat "$work/http.err")"
    say "echo stderr: $(cat "$work/echo.err")"
    exit 1
fi
http_rss_end=$(rss_kib "$http_pid")
echo_rss_end=$(rss_kib "$echo_pid")
http_cpu=$(cpu_seconds "$http_pid")
echo_cpu=$(cpu_seconds "$echo_pid")

# The servers close what the clients left (resets at once, idle connections at the keep-alive
# timeout): wait for the fd counts to come back, at most $settle s.
waited=0
while { [ "$(fds "$http_pid")" -ne "$http_fds_start" ] || [ "$(fds "$echo_pid")" -ne "$echo_fds_start" ]; } &&
    [ "$waited" -lt $((settle * 10)) ]; do
    sleep 0.1
    waited=$((waited + 1))
done
http_fds_end=$(fds "$http_pid")
echo_fds_end=$(fds "$echo_pid")

# wrk's figures.
summary=$(grep '^wrk-summary ' "$work/wrk.out" || true)
field() { sed -E "s/.* $1=([0-9]+).*/\1/" <<<"$summary"; }
if [ -n "$summary" ]; then
    requests=$(field requests)
    wrk_bytes=$(field bytes)
    wrk_errors="connect $(field connect), read $(field read), write $(field write), timeout $(field timeout), status $(field status)"
    wrk_error_total=$(($(field connect) + $(field read) + $(field write) + $(field timeout) + $(field status)))
    wrk_p99_ms=$(($(field p99_us) / 1000))
else
    requests=0 wrk_bytes=0 wrk_errors="no summary" wrk_error_total=1 wrk_p99_ms=0
fi
# iomux load's and the reset injector's.
json_field() { python3 -c 'import json, sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1"; }
messages=$(json_field messages <"$work/load.out" 2>/dev/null || echo 0)
load_errors=$(json_field errors <"$work/load.out" 2>/dev/null || echo unknown)
resets=$(json_field resets <"$work/resets.out" 2>/dev/null || echo 0)
reset_kinds=$(json_field kinds <"$work/resets.out" 2>/dev/null || echo unknown)
reset_errors=$(json_field errors <"$work/resets.out" 2>/dev/null || echo unknown)
reset_first_error=$(json_field first_error <"$work/resets.out" 2>/dev/null || echo unknown)

# Still answering: a file over curl, an echo round trip.
curl_ok=no
if curl --silent --show-error --max-time 10 --output "$work/final.txt" "http://127.0.0.1:$http_port/small.txt" &&
    cmp -s "$work/final.txt" "$root/small.txt"; then
    curl_ok=yes
fi
echo_ok=$(timeout 15 python3 -c '
import os, socket, sys
data = os.urandom(4096)
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as sock:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
print("yes" if got == data else "no")' "$echo_port" 2>/dev/null || echo no)

# Graceful stop: both exit 0 on SIGTERM (within 15 s; still running then, it is killed and fails).
stop() {
    local waited=0
    kill -TERM "$1"
    while kill -0 "$1" 2>/dev/null && [ "$waited" -lt 150 ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -0 "$1" 2>/dev/null && kill -KILL "$1"
    reap "$1"
}
stop "$http_pid"
http_exit=$reaped
stop "$echo_pid"
echo_exit=$reaped

allowed() { # allowed WARM: the RSS limit in KiB, WARM + max(10 %, 8 MiB)
    local tenth=$(($1 / 10))
    [ "$tenth" -ge 8192 ] || tenth=8192
    echo $(($1 + tenth))
}
http_rss_limit=$(allowed "$http_rss_warm")
echo_rss_limit=$(allowed "$echo_rss_warm")

echo
say "figures ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -r))"
say "  duration:             ${duration} s of load, ${warmup} s of it warm-up"
say "  http ($http_line)"
say "    requests served:    $requests by wrk (-c $connections), $((wrk_bytes / 1048576)) MiB, p99 ${wrk_p99_ms} ms; errors: $wrk_errors"
say "    RSS:                start ${http_rss_start} KiB, after warm-up ${http_rss_warm} KiB, peak ${http_rss_peak} KiB, end ${http_rss_end} KiB (limit ${http_rss_limit} KiB)"
say "    fds:                start ${http_fds_start}, peak ${http_fds_peak}, end ${http_fds_end}"
say "    CPU time:           ${http_cpu} s"
say "  echo ($echo_line)"
say "    messages:           $messages by iomux load echo (-c $connections, 512 B); errors: $load_errors"
say "    RSS:                start ${echo_rss_start} KiB, after warm-up ${echo_rss_warm} KiB, peak ${echo_rss_peak} KiB, end ${echo_rss_end} KiB (limit ${echo_rss_limit} KiB)"
say "    fds:                start ${echo_fds_start}, peak ${echo_fds_peak}, end ${echo_fds_end}"
say "    CPU time:           ${echo_cpu} s"
say "  resets injected:      $resets at ${reset_rate}/s: $reset_kinds; errors: $reset_errors"
echo

check "wrk ran to its end (status $wrk_status)" [ "$wrk_status" -eq 0 ]
check "wrk: no failed request ($wrk_errors)" [ "$wrk_error_total" -eq 0 ]
check "wrk: requests were served ($requests)" [ "$requests" -gt 0 ]
check "iomux load echo ran to its end (status $load_status)" [ "$load_status" -eq 0 ]
check "iomux load echo: 0 errors ($load_errors)" [ "$load_errors" = 0 ]
check "iomux load echo: messages were echoed ($messages)" [ "$messages" -gt 0 ]
check "reset injector ran to its end (status $resets_status)" [ "$resets_status" -eq 0 ]
check "reset injector: every connect and read it needed worked ($reset_errors errors; first: $reset_first_error)" \
    [ "$reset_errors" = 0 ]
check "http RSS ${http_rss_end} KiB <= ${http_rss_limit} KiB" [ "$http_rss_end" -le "$http_rss_limit" ]
check "echo RSS ${echo_rss_end} KiB <= ${echo_rss_limit} KiB" [ "$echo_rss_end" -le "$echo_rss_limit" ]
check "http fds back to ${http_fds_start} (${http_fds_end})" [ "$http_fds_end" -eq "$http_fds_start" ]
check "echo fds back to ${echo_fds_start} (${echo_fds_end})" [ "$echo_fds_end" -eq "$echo_fds_start" ]
check "http still answers (curl)" [ "$curl_ok" = yes ]
check "echo still answers (a 4 KiB round trip)" [ "$echo_ok" = yes ]
check "http exits 0 on SIGTERM ($http_exit)" [ "$http_exit" = 0 ]
check "echo exits 0 on SIGTERM ($echo_exit)" [ "$echo_exit" = 0 ]
if [ -s "$work/http.err" ]; then
    say "http stderr:"
    sed 's/^/    /' "$work/http.err"
fi
if [ -s "$work/echo.err" ]; then
    say "echo stderr:"
    sed 's/^/    /' "$work/echo.err"
fi

if [ ${#failures[@]} -gt 0 ]; then
    say "${#failures[@]} check(s) FAILED"
    exit 1
fi
say "all checks passed"
