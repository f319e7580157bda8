#!/bin/sh
# spawn_bench.sh BUILD [N]: the supervisor's per-instance overhead.
#
# N (default 1000) instances of a trivial protocol extension (the test
# helper misbehave, mode ok: handshake, a few messages, result) run with
# parallelism 8 through bench/spawn_driver (the supervisor API directly),
# once with one action per instance and once with two (validate + apply),
# against `make -j8` running N `/bin/true` targets.  Each is run three
# ways: without a sandbox plan (the supervisor alone), under isolation basic
# (the limits) and under strict (the sandbox: namespaces, mounts, Landlock,
# seccomp, a cgroup where the host allows one): the difference is the
# per-instance cost of the sandbox.  Prints the ratios.
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
	"$TMP/spawn_driver" "$BUILD/tests/helpers/misbehave" "$N" 8 "$1" '{"mode":"ok"}' "$2"
}
elapsed() { echo "$1" | sed 's/.*elapsed_ms=\([0-9]*\).*/\1/'; }

echo "make -j8, $N x /bin/true: ${make_ms} ms"
for iso in none basic strict; do
	out1=$(run 1 $iso); ms1=$(elapsed "$out1")
	out2=$(run 2 $iso); ms2=$(elapsed "$out2")
	echo "isolation $iso:"
	echo "  supervisor, $N instances x 1 action:  ${ms1} ms  ($out1)"
	echo "  supervisor, $N instances x 2 actions: ${ms2} ms  ($out2)"
	awk -v a="$ms1" -v b="$ms2" -v m="$make_ms" 'BEGIN {
		printf "  ratio 1 action / make:  %.2fx\n", a / m
		printf "  ratio 2 actions / make: %.2fx\n", b / m
	}'
	eval "ms1_$iso=$ms1 ms2_$iso=$ms2"
done
# shellcheck disable=SC2154
awk -v s="$ms2_strict" -v b="$ms2_basic" -v z="$ms2_none" -v n="$N" 'BEGIN {
	printf "sandbox cost per spawn (strict - basic, 2 actions): %.2f ms; strict / none: %.2fx\n",
	    (s - b) / (2 * n), s / z
}'
