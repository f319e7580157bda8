#!/bin/sh
# etcd_bench.sh [BUILD] [N]: the etcd state engine against the local one.
#
# N (default 500) exec instances running /bin/true, no dependencies,
# through `orchd run --parallelism 8` from empty state: once on the local
# engine (the baseline: stack files on the disk under TMPDIR, fsync'd) and
# once on the etcd engine, against a one-member etcd started here on
# loopback with its data directory on the same disk (etcd fsyncs its WAL).
# Median of 3 each, interleaved.  Prints both times, their ratio, the
# added cost per instance, and the etcd requests per instance: the
# difference of etcd's own request counters (grpc_server_handled_total,
# which the JSON gateway goes through) before and after one run.
# Needs etcd and etcdctl (make tools; . ~/.cache/orchd/tools/env.sh).
set -u
. "$(dirname "$0")/lib.sh"
bench_setup "${1:-build}"
N=${2:-500}
RUNS=3

etcd_pid=
trap 'kill $etcd_pid 2>/dev/null; wait $etcd_pid 2>/dev/null; rm -rf "$TMP"' EXIT
bench_etcd etcd_bench

mkdir "$TMP/l" "$TMP/e"
gen()
{
	awk -v n="$N" -v engine="$1" 'BEGIN {
		print "bench:\n  core:\n    stack: b\n    engine: " engine "\n  exec:"
		for (i = 0; i < n; i++) printf "    - name: t%d\n      command: [/bin/true]\n", i
	}'
}
gen "{type: local}" > "$TMP/l/pipeline.yaml"

# once DIR PREFIX: one timed run from empty state; sets T
once()
{
	rm -rf "$TMP/st"
	if ! time_cmd T "$ORCHD" run --parallelism 8 --state-dir "$TMP/st" "$1/pipeline.yaml" \
	    >"$TMP/out" 2>&1; then
		echo "etcd_bench: orchd run failed:" >&2
		tail -n 20 "$TMP/out" >&2
		exit 1
	fi
}

tl= te=
r=0
while [ $r -lt $RUNS ]; do
	once "$TMP/l"
	tl="$tl $T"
	# a fresh prefix each time: from empty state, like the local run
	gen "{type: etcd, endpoints: [$url], prefix: bench/$r}" > "$TMP/e/pipeline.yaml"
	q0=$(etcd_requests)
	once "$TMP/e"
	q1=$(etcd_requests)
	te="$te $T"
	n=$(etcdctl --endpoints "$url" get --prefix "bench/$r/stacks/" --keys-only | grep -c .)
	[ "$n" -eq "$N" ] || { echo "etcd_bench: $n stacks in etcd, expected $N" >&2; exit 1; }
	r=$((r + 1))
done
L=$(median $tl)
E=$(median $te)
printf '%-48s %7s  %s\n' "orchd run -j8, $N x /bin/true (median of $RUNS, ms)" median runs
printf '%-48s %7s %s\n' "local engine (baseline)" "$L" "$tl"
printf '%-48s %7s %s\n' "etcd engine, one member on loopback" "$E" "$te"
echo
echo "ratio etcd / local: $(ratio "$E" "$L")x"
echo "added per instance: $(awk -v e="$E" -v l="$L" -v n="$N" 'BEGIN { printf "%.2f", (e - l) / n }') ms"
echo "etcd requests per instance (last run): $(awk -v a="$q0" -v b="$q1" -v n="$N" 'BEGIN { printf "%.1f", (b - a) / n }')"
