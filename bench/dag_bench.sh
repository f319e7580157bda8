#!/bin/sh
# dag_bench.sh [BUILD]: scheduling overhead on a DAG of short steps.
#
# A DAG 8 wide and 10 deep of 100 ms steps (exec: sleep 0.1) through the real
# `orchd run --parallelism 8`, state on disk beside the pipeline, in two
# shapes:
#   levels  each step of level L depends on all 8 steps of level L-1
#           (a barrier per level: 8 x 7 = 56 edges between two levels)
#   chains  8 independent chains of 10 (step L of column C depends on step
#           L-1 of column C only)
# The critical path is 10 x 100 ms = 1.0 s in both; the figure is wall time /
# 1.0 s (goal <= 1.05x).  The wall time includes the validate phase (one
# orchd-ext-exec process started per step before anything is applied; it
# then waits, a session, and applies its step when the step's turn comes)
# and every durable state write.  Median of 3 runs per shape.
set -u
. "$(dirname "$0")/lib.sh"
bench_setup "${1:-build}"
W=8 D=10 STEP_MS=100 RUNS=3
CRIT=$((D * STEP_MS))

for shape in levels chains; do
	mkdir "$TMP/$shape"
	awk -v w=$W -v d=$D -v shape=$shape 'BEGIN {
		print "dag:\n  core:\n    stack: b\n  exec:"
		for (l = 0; l < d; l++)
			for (c = 0; c < w; c++) {
				printf "    - name: s%d_%d\n      command: [sleep, \"0.1\"]\n", l, c
				if (l == 0)
					continue
				if (shape == "chains") {
					printf "      depends_on: [s%d_%d]\n", l - 1, c
					continue
				}
				printf "      depends_on: ["
				for (p = 0; p < w; p++)
					printf "%ss%d_%d", p ? ", " : "", l - 1, p
				printf "]\n"
			}
	}' > "$TMP/$shape/pipeline.yaml"
done

printf '%-8s %10s %10s  %s\n' shape "median ms" "ratio" "runs (ms)"
for shape in levels chains; do
	ts=
	i=0
	while [ $i -lt $RUNS ]; do
		rm -rf "$TMP/$shape/.orchd"
		if ! time_cmd t "$ORCHD" run --parallelism 8 "$TMP/$shape/pipeline.yaml" \
		    >"$TMP/out" 2>&1; then
			echo "dag_bench: orchd run failed:" >&2
			tail -n 20 "$TMP/out" >&2
			exit 1
		fi
		ts="$ts $t"
		i=$((i + 1))
	done
	m=$(median $ts)
	printf '%-8s %10d %9sx  %s\n' "$shape" "$m" "$(ratio "$m" "$CRIT")" "$ts"
	cp "$TMP/$shape"/.orchd/runs/*/report.json "$TMP/$shape.report.json"
done
echo "critical path: $D x $STEP_MS ms = $CRIT ms; goal <= 1.05x; width $W, --parallelism 8"
# where the time goes, from the last run's report of each shape: from the
# run's start to the first apply (loading + the validate phase), the mean
# instance duration (exec + sleep 0.1 + state write, as orchd measures it),
# and the mean gap between the end of a level and the start of the next
if command -v python3 >/dev/null; then
	echo
	printf '%-8s %12s %10s %12s %10s %10s\n' "(ms)" "to 1st apply" "mean step" "steps on cp" "gaps on cp" "after last"
	for shape in levels chains; do
		python3 - "$TMP/$shape.report.json" "$shape" $W $D <<'PY' || true
import json, sys
from datetime import datetime
def ms(s):
	return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() * 1000
r = json.load(open(sys.argv[1]))
shape, w, d = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
inst = {i["name"]: (ms(i["started_at"]), i["duration_ms"]) for i in r["instances"]}
t0 = ms(r["started_at"])
first = min(s for s, _ in inst.values())
steps = [du for _, du in inst.values()]
last = max(s + du for s, du in inst.values())
# the critical path: from the last step to end, back through the
# predecessor that ended last (the one the step waited for); its steps and
# the gaps between them summed separately
end = lambda n: inst[n][0] + inst[n][1]
best = {}
for l in range(d):
	for c in range(w):
		n = "s%d_%d" % (l, c)
		if l == 0:
			best[n] = (inst[n][1], 0.0)
			continue
		preds = ["s%d_%d" % (l - 1, p) for p in (range(w) if shape == "levels" else [c])]
		b = max(preds, key=end)
		best[n] = (best[b][0] + inst[n][1], best[b][1] + inst[n][0] - end(b))
st, gp = best[max(("s%d_%d" % (d - 1, c) for c in range(w)), key=end)]
print("%-8s %12.0f %10.1f %12.0f %10.0f %10.0f" % (shape, first - t0, sum(steps) / len(steps),
	st, gp, ms(r["ended_at"]) - last))
PY
	done
fi
