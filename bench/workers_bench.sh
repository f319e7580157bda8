#!/bin/sh
# workers_bench.sh [BUILD] [N] [RUNS]: `orchd run --workers` on 1, 2 and 3
# `orchd worker`s against the same pipeline run on one host.
#
# N (default 1000) exec instances running /bin/true, no dependencies, on
# the etcd engine (one member on loopback, started here).  The baseline is
# the single-host run of the same pipeline, same engine, -j8.  Each worker
# runs -j8 and the coordinator -j(8 x workers), all on this machine: the
# figures are the cost of coordinating through etcd (publish, claim,
# result, record), not the gain of more machines.  Median of RUNS (default
# 1) each.  Prints each time, its ratio to the baseline, the added time per
# instance, and the etcd requests per instance (etcd's own
# grpc_server_handled_total, before and after the run: coordinator and
# workers together, idle polling included).
# Needs etcd and etcdctl (make tools; . ~/.cache/orchd/tools/env.sh).
set -u
. "$(dirname "$0")/lib.sh"
bench_setup "${1:-build}"
N=${2:-1000}
RUNS=${3:-1}

etcd_pid= wpids=
stop_workers()
{
	for p in $wpids; do kill "$p" 2>/dev/null; done
	for p in $wpids; do wait "$p" 2>/dev/null; done
	wpids=
}
trap 'stop_workers; kill $etcd_pid 2>/dev/null; wait $etcd_pid 2>/dev/null; rm -rf "$TMP"' EXIT
bench_etcd workers_bench

gen()
{
	awk -v n="$N" -v prefix="$1" -v url="$url" 'BEGIN {
		print "bench:\n  core:\n    stack: b\n    engine: {type: etcd, endpoints: [" url "], prefix: " prefix "}\n  exec:"
		for (i = 0; i < n; i++) printf "    - name: t%d\n      command: [/bin/true]\n", i
	}' > "$TMP/pipeline.yaml"
}

# once W PREFIX: one timed run from empty state on W workers (0: none);
# sets T and Q (requests)
once()
{
	gen "$2"
	extra=
	if [ "$1" -gt 0 ]; then
		w=0
		while [ $w -lt "$1" ]; do
			"$ORCHD" worker --endpoints "$url" --prefix "$2" --name "b$w" -j8 \
				>"$TMP/w$w.log" 2>&1 &
			wpids="$wpids $!"
			w=$((w + 1))
		done
		until [ "$(etcdctl --endpoints "$url" get --prefix "${2}work/workers/" --keys-only | grep -c .)" -ge "$1" ]; do
			sleep 0.05
		done
		extra="--workers"
	fi
	rm -rf "$TMP/st"
	q0=$(etcd_requests)
	if ! time_cmd T "$ORCHD" run --parallelism $((8 * ($1 > 0 ? $1 : 1))) $extra \
	    --state-dir "$TMP/st" "$TMP/pipeline.yaml" >"$TMP/out" 2>&1; then
		echo "workers_bench: orchd run failed:" >&2
		tail -n 20 "$TMP/out" >&2
		exit 1
	fi
	Q=$(($(etcd_requests) - q0))
	stop_workers
	n=$(etcdctl --endpoints "$url" get --prefix "${2}stacks/" --keys-only | grep -c .)
	[ "$n" -eq "$N" ] || { echo "workers_bench: $n stacks in etcd, expected $N" >&2; exit 1; }
	if [ "$1" -gt 0 ]; then
		ran=$(grep -c 'ran on worker' "$TMP/out")
		[ "$ran" -eq "$N" ] || { echo "workers_bench: $ran of $N ran on a worker" >&2; exit 1; }
	fi
}

t0= t1= t2= t3= q0s= q1s= q2s= q3s=
r=0
while [ $r -lt "$RUNS" ]; do
	for w in 0 1 2 3; do
		once $w "bench/$r/$w/"
		eval "t$w=\"\$t$w $T\""
		eval "q${w}s=$Q"
	done
	r=$((r + 1))
done
B=$(median $t0)
printf '%-44s %8s %7s %10s %9s\n' "$N x /bin/true, etcd engine (median ms)" time ratio "ms/inst+" "req/inst"
printf '%-44s %8s %7s %10s %9s\n' "single host -j8 (baseline)" "$B" "1.00x" "-" \
	"$(awk -v q="$q0s" -v n="$N" 'BEGIN { printf "%.1f", q / n }')"
for w in 1 2 3; do
	eval "M=\$(median \$t$w)"
	eval "Q=\$q${w}s"
	printf '%-44s %8s %7s %10s %9s\n' "--workers, $w worker(s) -j8 each" "$M" "$(ratio "$M" "$B")x" \
		"$(awk -v m="$M" -v b="$B" -v n="$N" 'BEGIN { printf "%.2f", (m - b) / n }')" \
		"$(awk -v q="$Q" -v n="$N" 'BEGIN { printf "%.1f", q / n }')"
done
