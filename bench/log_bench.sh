#!/bin/sh
# log_bench.sh BUILD [MIB]: log throughput through the supervisor.
#
# One extension (the test helper misbehave, mode flood) writes MIB MiB
# (default 1024) of 1000-byte log lines, either as protocol log messages on
# stdout or as text on stderr, through bench/spawn_driver (supervisor API,
# lines counted and dropped); the baseline is the same extension's output
# piped through `cat` to /dev/null.  Prints throughput ratios (goal >= 0.5x)
# and the driver's peak RSS (goal <= 32 MiB).
set -eu
BUILD=${1:-build}
MIB=${2:-1024}
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

cd "$SRC"
. bench/lib.sh
build_spawn_driver "$BUILD" "$TMP/spawn_driver"

EXT="$BUILD/tests/helpers/misbehave"
ms() { date +%s%3N; }
hello='{"type":"hello","protocol":{"min":1,"max":1},"orchd_version":"0.1.0"}'

for stream in stderr stdout; do
	cfg="{\"mode\":\"flood\",\"mb\":$MIB,\"stream\":\"$stream\"}"
	action="{\"type\":\"action\",\"action\":\"apply\",\"instance\":\"x\",\"stack\":\"s\",\"config\":$cfg,\"state\":null,\"outputs\":{},\"workdir\":\"/tmp\"}"
	t0=$(ms)
	if [ $stream = stdout ]; then
		printf '%s\n%s\n' "$hello" "$action" | "$EXT" 2>/dev/null | cat >/dev/null
	else
		printf '%s\n%s\n' "$hello" "$action" | "$EXT" 2>&1 >/dev/null | cat >/dev/null
	fi
	t1=$(ms)
	cat_ms=$((t1 - t0))
	out=$("$TMP/spawn_driver" "$EXT" 1 1 1 "$cfg")
	sup_ms=$(echo "$out" | sed 's/.*elapsed_ms=\([0-9]*\).*/\1/')
	rss=$(echo "$out" | sed 's/.*max_rss_kib=\([0-9]*\).*/\1/')
	[ $cat_ms -gt 0 ] || cat_ms=1
	[ $sup_ms -gt 0 ] || sup_ms=1
	awk -v s="$stream" -v c="$cat_ms" -v d="$sup_ms" -v m="$MIB" -v r="$rss" 'BEGIN {
		printf "%s: %d MiB  cat %.0f MiB/s  supervisor %.0f MiB/s  ratio %.2fx (goal >= 0.5x)  driver peak RSS %.1f MiB (goal <= 32)\n",
			s, m, m * 1000 / c, m * 1000 / d, c / d, r / 1024
	}'
done
