#!/usr/bin/env bash
# Static file servers side by side: nginx, h2o and lighttpd (Debian's packages, configs in bench/peers/conf/)
# and `iomux http` when target/release/iomux has `http`, loaded by wrk; idle keep-alive memory; syscalls per
# request with strace. Installs the servers, wrk and strace from Debian's packages when missing.
# Options: bench/http.sh --help; description: bench/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

build=0
install=1
args=()
for arg in "$@"; do
	case $arg in
	--build) build=1 ;;
	--no-install) install=0 ;;
	-h | --help) exec python3 "$here/lib/http_bench.py" --help ;;
	*) args+=("$arg") ;;
	esac
done

command -v python3 >/dev/null || { echo "bench/http.sh: python3 is required" >&2; exit 1; }

# Debian package for each command the benchmark runs.
declare -A package=([nginx]=nginx [h2o]=h2o [lighttpd]=lighttpd [wrk]=wrk [strace]=strace)
missing=()
for cmd in nginx h2o lighttpd wrk strace; do
	command -v "$cmd" >/dev/null || missing+=("${package[$cmd]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$install" = 0 ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		echo "bench/http.sh: missing ${missing[*]}; install them (Debian: apt-get install -y ${missing[*]})" >&2
		echo "bench/http.sh: going on without them" >&2
	else
		echo "bench/http.sh: installing ${missing[*]} from Debian's packages" >&2
		# The packages' scripts must not start system services: policy-rc.d says no while we install.
		made_policy=0
		if [ ! -e /usr/sbin/policy-rc.d ]; then
			printf '#!/bin/sh\n# written by iomux bench/http.sh while it installs packages\nexit 101\n' >/usr/sbin/policy-rc.d
			chmod +x /usr/sbin/policy-rc.d
			made_policy=1
		fi
		trap '[ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -q "${missing[@]}" >&2 || { apt-get update -q >&2 && apt-get install -y -q "${missing[@]}" >&2; }
		[ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
		made_policy=0
		trap - EXIT
	fi
fi

if [ "$build" = 1 ]; then
	echo "bench/http.sh: building iomux (cargo build --release --locked)" >&2
	(cd "$root" && cargo build --release --locked)
fi
echo "bench/http.sh: building the peers (bench/peers)" >&2
cargo build --release --locked --quiet --manifest-path "$here/peers/Cargo.toml"

# The driver starts every process in its own session and stops each by its pid when it exits, however it exits.
exec python3 "$here/lib/http_bench.py" --argv="$*" "${args[@]}"
