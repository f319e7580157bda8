#!/bin/sh
# commit_bench.sh [BUILD] [N]: the local engine's group commit.  N records
# (default 1000, one small stack each) are written under the lock, on the
# disk under TMPDIR, in group commits of K records (write_deferred each, one
# sync: one journal append and one fdatasync), for K = 1 (the baseline: one
# flush per record, as before group commit), 8 and 64, then unlocked (the
# checkpoint: the stack files made durable, the journal emptied).  Median of
# 3; ratio of each K to K = 1.  Uses the test helper tests/helpers/statewriter.
set -u
. "$(dirname "$0")/lib.sh"
bench_setup "${1:-build}"
N=${2:-1000}
HELPER=$BUILD/tests/helpers/statewriter
[ -x "$HELPER" ] || { echo "commit_bench: build $HELPER first (make check)" >&2; exit 2; }

printf '%-44s %7s  %s\n' "what (median of 3, ms)" median runs
for k in 1 8 64; do
	runs=
	for r in 1 2 3; do
		rm -rf "$TMP/st"
		out=$("$HELPER" "$TMP/st" dev-exec-x commit "$N" "$k") || exit 1
		runs="$runs ${out##*ms=}"
	done
	m=$(median $runs)
	eval "T$k=$m"
	printf '%-44s %7s %s\n' "$N records, group commits of $k" "$m" "$runs"
done
echo
echo "ratio K=8  / K=1: $(ratio "$T8" "$T1")x"
echo "ratio K=64 / K=1: $(ratio "$T64" "$T1")x"
echo "per record: K=1 $(awk -v t="$T1" -v n="$N" 'BEGIN { printf "%.0f", t * 1000 / n }') us," \
	"K=64 $(awk -v t="$T64" -v n="$N" 'BEGIN { printf "%.0f", t * 1000 / n }') us"
