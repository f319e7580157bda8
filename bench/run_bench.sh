#!/bin/sh
# run_bench.sh [BUILD] [N]: orchd run end to end against make.
#
# N (default 1000) exec instances running /bin/true, no dependencies, go
# through the real `orchd run --parallelism 8` (validate + apply in one
# orchd-ext-exec process, a session (PROTOCOL.md §7.6), plus the command:
# 2 processes per instance), with the durable state writes of the local engine (one stack
# file per instance, temp file + fsync + rename + directory fsync) on the
# disk beside the pipeline, and again with --state-dir on tmpfs (/dev/shm)
# to separate the fsync cost.  Baselines, same run: `make -j8` of N
# /bin/true targets (goal: orchd <= 3x) and of 2N targets (same process
# count as orchd: what is left is orchd's own overhead).  The runs use the
# default isolation (strict: every extension in its sandbox); one more
# variant, on tmpfs, sets core.isolation: basic, so that the difference is
# the sandbox's cost.  Each figure is the median of 3 runs; orchd's peak
# RSS is GNU time's %M (max over the runs).
set -u
. "$(dirname "$0")/lib.sh"
bench_setup "${1:-build}"
N=${2:-1000}
RUNS=3

gen_makefile "$N" "$TMP/make1.mk"
gen_makefile $((N * 2)) "$TMP/make3.mk"
mkdir "$TMP/p"
awk -v n="$N" 'BEGIN {
	print "bench:\n  core:\n    stack: b\n  exec:"
	for (i = 0; i < n; i++) printf "    - name: t%d\n      command: [/bin/true]\n", i
}' > "$TMP/p/pipeline.yaml"
mkdir "$TMP/pb"
sed 's/^    stack: b$/    stack: b\n    isolation: basic/' "$TMP/p/pipeline.yaml" > "$TMP/pb/pipeline.yaml"
grep -q 'isolation: basic' "$TMP/pb/pipeline.yaml" || { echo "run_bench: no basic variant" >&2; exit 1; }
shm_dir

# orchd_once STATEDIR [PIPELINE_DIR]: one timed run from empty state; sets
# T and RSS
orchd_once()
{
	rm -rf "$1"
	if ! time_cmd T /usr/bin/time -f %M -o "$TMP/rss" \
	    "$ORCHD" run --parallelism 8 --state-dir "$1" "${2:-$TMP/p}/pipeline.yaml" \
	    >"$TMP/out" 2>&1; then
		echo "run_bench: orchd run failed:" >&2
		tail -n 20 "$TMP/out" >&2
		exit 1
	fi
	n_stacks=$(find "$1/stacks" -name '*.json' | wc -l)
	[ "$n_stacks" -eq "$N" ] || { echo "run_bench: $n_stacks stacks, expected $N" >&2; exit 1; }
	RSS=$(tail -n 1 "$TMP/rss")
}

m1= m3= od= os= ob= rss_d=0 rss_s=0
i=0
while [ $i -lt $RUNS ]; do
	# interleave the variants so that a burst of load elsewhere on the
	# machine hits all of them alike
	time_cmd t make -s -j8 -f "$TMP/make1.mk" >/dev/null || exit 1
	m1="$m1 $t"
	time_cmd t make -s -j8 -f "$TMP/make3.mk" >/dev/null || exit 1
	m3="$m3 $t"
	orchd_once "$TMP/p/.orchd"
	od="$od $T"; [ "$RSS" -gt "$rss_d" ] && rss_d=$RSS
	if [ -n "$SHM" ]; then
		orchd_once "$SHM/state"
		os="$os $T"; [ "$RSS" -gt "$rss_s" ] && rss_s=$RSS
		orchd_once "$SHM/state" "$TMP/pb"
		ob="$ob $T"
	fi
	i=$((i + 1))
done

M1=$(median $m1) M3=$(median $m3) OD=$(median $od)
printf '%-50s %8s  %s\n' "what (median of $RUNS, ms)" "median" "runs"
printf '%-50s %8d  %s\n' "make -j8, $N x /bin/true" "$M1" "$m1"
printf '%-50s %8d  %s\n' "make -j8, $((N * 2)) x /bin/true" "$M3" "$m3"
printf '%-50s %8d  %s\n' "orchd run -j8, $N x exec /bin/true, state on disk" "$OD" "$od"
if [ -n "$SHM" ]; then
	OS=$(median $os) OB=$(median $ob)
	printf '%-50s %8d  %s\n' "orchd run -j8, same, --state-dir on tmpfs" "$OS" "$os"
	printf '%-50s %8d  %s\n' "orchd run -j8, tmpfs, core.isolation: basic" "$OB" "$ob"
fi
echo
echo "ratio orchd (disk)  / make $N:      $(ratio "$OD" "$M1")x  (goal <= 3x)"
echo "ratio orchd (disk)  / make $((N * 2)):      $(ratio "$OD" "$M3")x  (same process count)"
if [ -n "$SHM" ]; then
	echo "ratio orchd (tmpfs) / make $N:      $(ratio "$OS" "$M1")x"
	echo "ratio orchd (tmpfs) / make $((N * 2)):      $(ratio "$OS" "$M3")x"
	echo "durable state writes (disk - tmpfs): $((OD - OS)) ms, $(((OD - OS) * 1000 / N)) us per instance"
	echo "ratio orchd (tmpfs, basic) / make $N: $(ratio "$OB" "$M1")x"
	echo "the sandbox (strict - basic, tmpfs): $((OS - OB)) ms, $(((OS - OB) * 1000 / N)) us per extension process"
else
	echo "(no tmpfs at /dev/shm: state-on-tmpfs variant skipped)"
fi
echo "orchd peak RSS: $rss_d KiB (state on disk)${SHM:+, $rss_s KiB (tmpfs)}"
