#!/bin/sh
# repeat_bench.sh [BUILD] [RUNS] [N] -- does `orchd run` slow down run
# after run on the same state?  (issue 12, item 6: 5.4, 10.4, 11.1, 14.2 s
# were once seen on disk for four runs from empty state, not on tmpfs.)
#
# RUNS (default 5) consecutive `orchd run -j8` of N (default 1000) exec
# instances running /bin/true, keeping one state directory (run logs,
# history and stack files pile up as in real use), on the disk beside the
# pipeline and on tmpfs (/dev/shm).  Baseline: the first run of the same
# series.  Prints each run's time, the last run over the first, and the
# least-squares slope in ms per run (a series that grows has a slope well
# above the run-to-run noise).
set -u
. "$(dirname "$0")/lib.sh"
bench_setup "${1:-build}"
RUNS=${2:-5}
N=${3:-1000}

mkdir "$TMP/p"
awk -v n="$N" 'BEGIN {
	print "bench:\n  core:\n    stack: b\n  exec:"
	for (i = 0; i < n; i++) printf "    - name: t%d\n      command: [/bin/true]\n", i
}' > "$TMP/p/pipeline.yaml"
shm_dir

# series LABEL STATEDIR
series()
{
	times=
	i=1
	while [ "$i" -le "$RUNS" ]; do
		if ! time_cmd t "$ORCHD" run --parallelism 8 --state-dir "$2" \
		    "$TMP/p/pipeline.yaml" >"$TMP/out" 2>&1; then
			echo "repeat_bench: orchd run failed:" >&2
			tail -n 20 "$TMP/out" >&2
			exit 1
		fi
		times="$times $t"
		i=$((i + 1))
	done
	files=$(find "$2" | wc -l)
	printf '%s\n' $times | awk -v label="$1" -v files="$files" '
		{ y[NR] = $1; line = line sprintf(" %d", $1) }
		END {
			n = NR; sx = sy = sxy = sxx = 0
			for (i = 1; i <= n; i++) { sx += i; sy += y[i]; sxy += i * y[i]; sxx += i * i }
			slope = n > 1 ? (n * sxy - sx * sy) / (n * sxx - sx * sx) : 0
			printf "%-6s ms:%s\n", label, line
			printf "%-6s last/first %.2f, slope %+.0f ms per run, %d files in the state dir after\n",
				label, y[n] / y[1], slope, files
		}'
}

echo "repeat_bench: $RUNS runs of $N exec instances (-j8) on one state dir"
series disk "$TMP/state"
if [ -n "$SHM" ]; then
	series tmpfs "$SHM/state"
else
	echo "tmpfs  (no writable tmpfs at /dev/shm: skipped)"
fi
