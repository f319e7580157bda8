#!/bin/sh
# spawn_bench.sh BUILD [N]: the supervisor's per-instance overhead.
#
# N (default 1000) instances of a trivial protocol extension (the test
# helper misbehave, mode ok: handshake, a few messages, result) run with
# parallelism 8 through bench/spawn_driver (the supervisor API directly),
# once with one action per instance and once with two (validate + apply),
# against `make -j8` running N `/bin/true` targets.  Prints the ratios.
set -eu
BUILD=${1:-build}
N=${2:-1000}
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

cd "$SRC"
. bench/lib.sh
build_spawn_driver "$BUILD" "$TMP/spawn_driver"

ms() { date +%s%3N; }

# baseline: make -j8 with N /bin/true targets
{
	printf 'all:'
	i=0; while [ $i -lt "$N" ]; do printf ' t%d' $i; i=$((i + 1)); done
	printf '\n'
	i=0; while [ $i -lt "$N" ]; do printf 't%d:\n\t@/bin/true\n' $i; i=$((i + 1)); done
	printf '.PHONY: all'
	i=0; while [ $i -lt "$N" ]; do printf ' t%d' $i; i=$((i + 1)); done
	printf '\n'
} > "$TMP/Makefile"
t0=$(ms); make -s -j8 -f "$TMP/Makefile" >/dev/null; t1=$(ms)
make_ms=$((t1 - t0))
[ $make_ms -gt 0 ] || make_ms=1

run() {
	"$TMP/spawn_driver" "$BUILD/tests/helpers/misbehave" "$N" 8 "$1" '{"mode":"ok"}'
}
out1=$(run 1); ms1=$(echo "$out1" | sed 's/.*elapsed_ms=\([0-9]*\).*/\1/')
out2=$(run 2); ms2=$(echo "$out2" | sed 's/.*elapsed_ms=\([0-9]*\).*/\1/')

echo "make -j8, $N x /bin/true:              ${make_ms} ms"
echo "supervisor, $N instances x 1 action:    ${ms1} ms  ($out1)"
echo "supervisor, $N instances x 2 actions:   ${ms2} ms  ($out2)"
awk -v a="$ms1" -v b="$ms2" -v m="$make_ms" 'BEGIN {
	printf "ratio 1 action / make:  %.2fx (goal <= 3x for two spawns per instance)\n", a / m
	printf "ratio 2 actions / make: %.2fx\n", b / m
}'
