#!/bin/sh
# run.sh [BUILD] -- run every bench/*_bench.sh in turn, then
# log_bench_orchd.sh and outputs_1000.sh (make bench does this).
# Each script takes the build directory as its only argument; a failing
# script is reported and the others still run.  Exit 1 if any failed.
set -u
BUILD=${1:-build}
DIR=$(cd "$(dirname "$0")" && pwd)
status=0
for script in "$DIR"/*_bench.sh "$DIR"/log_bench_orchd.sh "$DIR"/outputs_1000.sh; do
	[ -e "$script" ] || continue
	echo "== $(basename "$script")"
	if ! sh "$script" "$BUILD"; then
		echo "== $(basename "$script") FAILED" >&2
		status=1
	fi
done
exit $status
