#!/usr/bin/env bash
# Echo servers side by side: iomux echo (each model and backend, when target/release/iomux has `echo`),
# tokio current_thread and multi_thread, and the seeds' Python selectors server, loaded by `iomux load echo`
# (when present) and the peers' echo_load. Options: bench/echo.sh --help; description: bench/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

build=0
args=()
for arg in "$@"; do
	case $arg in
	--build) build=1 ;;
	-h | --help) exec python3 "$here/lib/echo_bench.py" --help ;;
	*) args+=("$arg") ;;
	esac
done

command -v python3 >/dev/null || { echo "bench/echo.sh: python3 is required" >&2; exit 1; }
if [ "$build" = 1 ]; then
	echo "bench/echo.sh: building iomux (cargo build --release --locked)" >&2
	(cd "$root" && cargo build --release --locked)
fi
echo "bench/echo.sh: building the peers (bench/peers)" >&2
cargo build --release --locked --quiet --manifest-path "$here/peers/Cargo.toml"

# The driver starts every process in its own session and stops each by its pid when it exits, however it exits.
exec python3 "$here/lib/echo_bench.py" --argv="$*" "${args[@]}"
