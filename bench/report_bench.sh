#!/bin/sh
# report_bench.sh [BUILD] [N] -- the run's reports at N=1000 instances: one
# `orchd run -j8` of N `exec` instances (each logging 20 lines, in chains of
# 10 so that the graph has depth), then each format rendered again from the
# stored report by `orchd report` (median of 3): its time and size.
# Baseline, same run: `jq . report.json` (reading and printing the same
# JSON).  Goal (issue 16): the HTML page fast and small at 1 000 instances.
# With chromium on PATH, also the time Chromium takes to load the page with
# scripts off and build its DOM (tests/formats/page.py).
set -eu
. "$(dirname "$0")/lib.sh"
bench_setup "${1:-build}"
N=${2:-1000}
command -v jq >/dev/null || { echo "report_bench: needs jq" >&2; exit 2; }

P=$TMP/p.yaml
{
	echo "bench:"
	echo "  core: {parallelism: 8}"
	echo "  exec:"
	i=0
	while [ "$i" -lt "$N" ]; do
		echo "    - name: i$i"
		if [ $((i % 10)) -ne 0 ]; then echo "      depends_on: [i$((i - 1))]"; fi
		echo "      command: [sh, -c, 'for k in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do echo line \$k of i$i; done']"
		i=$((i + 1))
	done
} > "$P"
"$ORCHD" run -j8 -q "$P" > /dev/null 2>&1 || { echo "report_bench: the run failed" >&2; exit 1; }
RUN=$(ls -d "$TMP"/.orchd/runs/*/ | head -n 1)
REP=$RUN/report.json

printf '%-34s %8s %12s %8s\n' "what (median of 3)" "ms" "bytes" "ratio"
jqt=
for _ in 1 2 3; do time_cmd t jq . "$REP" > "$TMP/jq.out"; jqt="$jqt $t"; done
jqm=$(median $jqt)
printf '%-34s %8s %12s %8s\n' "jq . report.json (baseline)" "$jqm" "$(wc -c < "$TMP/jq.out")" "1.00"
for f in html junit trace metrics; do
	ts=
	for _ in 1 2 3; do
		time_cmd t "$ORCHD" report "$REP" "--$f" "$TMP/out.$f"
		ts="$ts $t"
	done
	m=$(median $ts)
	printf '%-34s %8s %12s %8s\n' "orchd report --$f" "$m" "$(wc -c < "$TMP/out.$f")" "$(ratio "$m" "$jqm")"
done
printf '%-34s %8s %12s\n' "report.json itself" "" "$(wc -c < "$REP")"
printf '%-34s %8s %12s\n' "logs/ (all instances)" "" "$(cat "$RUN"/logs/*.log | wc -c)"
if command -v chromium >/dev/null 2>&1; then
	ids=$(awk '/- name:/ { printf " exec.%s", $3 }' "$P")
	# shellcheck disable=SC2086
	time_cmd t python3 "$SRC/tests/formats/page.py" "$TMP/out.html" $ids > "$TMP/page.out" ||
		{ cat "$TMP/page.out"; exit 1; }
	printf '%-34s %8s   (%s)\n' "Chromium: load, scripts off, DOM" "$t" "$(cut -c1-80 "$TMP/page.out")"
fi
