#!/usr/bin/env bash
# A real browser against `iomux http`: serves the demo site (site/) and a --listing page, loads each
# in headless Chromium with --dump-dom, checks the DOM, and checks the access log shows the page's
# image (/iomux.png) and stylesheet fetched with 200. Installs Debian's chromium when it is missing
# (needs root). Every server and every chromium call is bounded in time; the servers are stopped by
# PID on exit. Usage: scripts/browser.sh (from anywhere in the repository).
set -euo pipefail
cd "$(dirname "$0")/.."

# Seconds any one chromium load, or a server's first line, may take.
LIMIT=${BROWSER_LIMIT:-90}

fail() {
    echo "browser: FAIL: $*" >&2
    exit 1
}

if ! command -v chromium >/dev/null; then
    echo "browser: installing Debian's chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

cargo build --locked --quiet --bin iomux
iomux=target/debug/iomux

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# start NAME ARGS...: runs `iomux http ARGS... --port 0` in the background, logging to $work/NAME.out
# and $work/NAME.err, and sets $url from its first line.
start() {
    local name=$1
    shift
    "$iomux" http "$@" --port 0 >"$work/$name.out" 2>"$work/$name.err" &
    pids+=("$!")
    local waited=0
    until [ -s "$work/$name.out" ] && head -n 1 "$work/$name.out" | grep -q ')$'; do
        sleep 0.1
        waited=$((waited + 1))
        [ "$waited" -lt $((LIMIT * 10)) ] || fail "$name: no listening line; stderr: $(cat "$work/$name.err")"
    done
    local line
    line=$(head -n 1 "$work/$name.out")
    url=$(sed -E 's#^iomux http: listening on (http://[^ ]+/) \(backend .*, workers .*\)$#\1#' <<<"$line")
    [[ $url == http://* ]] || fail "$name: unexpected first line: $line"
    echo "browser: $name serves $url"
}

# load URL OUT: the DOM Chromium builds for URL, after its load event, into OUT.
load() {
    local profile
    profile=$(mktemp -d -p "$work")
    timeout "$LIMIT" chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --no-first-run --disable-sync --disable-quic \
        --user-data-dir="$profile" --dump-dom "$1" >"$2" 2>"$2.err" ||
        fail "chromium could not load $1 (status $?): $(tail -n 5 "$2.err")"
}

# expect FILE TEXT...: each TEXT occurs in FILE.
expect() {
    local file=$1
    shift
    for text in "$@"; do
        grep -qF -- "$text" "$file" || fail "$(basename "$file") lacks: $text"
    done
}

# expect_log NAME LINE: the access log of NAME gets a line ending in LINE (waits, bounded).
expect_log() {
    local waited=0
    until grep -qF -- "$2" "$work/$1.out"; do
        sleep 0.1
        waited=$((waited + 1))
        [ "$waited" -lt $((LIMIT * 10)) ] || fail "$1: no access log line with: $2; log: $(cat "$work/$1.out")"
    done
}

# The demo site: the index page with its logo and stylesheet, and another page.
start site site
load "$url" "$work/index.html"
expect "$work/index.html" '<title>iomux — event-driven IO from the system calls up</title>' \
    '<h1>iomux</h1>' 'id="logo"' 'src="iomux.png"' 'id="intro"'
png_size=$(stat -c %s site/iomux.png)
css_size=$(stat -c %s site/style.css)
expect_log site "\"GET / HTTP/1.1\" 200 "
expect_log site "\"GET /iomux.png HTTP/1.1\" 200 $png_size"
expect_log site "\"GET /style.css HTTP/1.1\" 200 $css_size"
load "${url}layers.html" "$work/layers.html"
expect "$work/layers.html" 'src="iomux.png"'
echo "browser: demo site OK (index, logo $png_size bytes, stylesheet, layers page)"

# A listing of a directory without index.html, with names that need escaping and encoding.
mkdir -p "$work/listing/sub dir"
printf 'one\n' >"$work/listing/a.txt"
printf 'markup\n' >"$work/listing/<b>&.txt"
printf 'space\n' >"$work/listing/space name.txt"
printf 'hidden\n' >"$work/listing/.hidden"
start listing "$work/listing" --listing
load "$url" "$work/listing.html"
expect "$work/listing.html" 'href="a.txt"' 'href="%3Cb%3E%26.txt"' '&lt;b&gt;&amp;.txt' \
    'href="space%20name.txt"' 'href="sub%20dir/"'
if grep -qF '.hidden' "$work/listing.html"; then
    fail "the listing shows a dotfile"
fi
if grep -qF '<b>&amp;' "$work/listing.html"; then
    fail "a file name became markup"
fi
expect_log listing '"GET / HTTP/1.1" 200 '
# Follow a link from the listing as the browser would.
load "${url}space%20name.txt" "$work/space.html"
expect "$work/space.html" 'space'
echo "browser: listing OK (sorted entries, escaped names, encoded links, no dotfiles)"
echo "browser: all checks passed"
