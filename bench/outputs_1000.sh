#!/bin/sh
# outputs_1000.sh [BUILD] [N]: `orchd outputs --json` over N stacks.
#
# One `orchd run -j8` of N (default 1000) exec instances, each writing one
# output (v=I to $ORCHD_OUTPUT), creates N stacks in the local engine (not
# timed).  Then, median of 5 each, page cache warm:
#   orchd outputs FILE --json > /dev/null   (config load + graph + reading
#                                            and printing every stack; no
#                                            extension is started)
#   cat STATE/stacks/*.json > /dev/null     (baseline: the same bytes)
#   jq -c -s 'map(.outputs)' STATE/stacks/*.json (second baseline: parse
#                                            the same files as JSON; if jq)
# and the ratios.
set -u
. "$(dirname "$0")/lib.sh"
bench_setup "${1:-build}"
N=${2:-1000}
RUNS=5

mkdir "$TMP/p"
awk -v n="$N" 'BEGIN {
	print "outs:\n  core:\n    stack: b\n  exec:"
	for (i = 0; i < n; i++)
		printf "    - name: o%d\n      command: [sh, -c, '\''echo v=%d >> \"$ORCHD_OUTPUT\"'\'']\n", i, i
}' > "$TMP/p/pipeline.yaml"
P=$TMP/p/pipeline.yaml
ST=$TMP/p/.orchd/stacks
"$ORCHD" run -j8 "$P" > "$TMP/out" 2>&1 ||
	{ echo "outputs_1000: orchd run failed" >&2; tail -n 20 "$TMP/out" >&2; exit 1; }
"$ORCHD" outputs "$P" --json > "$TMP/outputs.json" || exit 1
got=$(jq 'length' "$TMP/outputs.json" 2>/dev/null || echo "$N")
[ "$got" -eq "$N" ] || { echo "outputs_1000: $got instances in outputs, expected $N" >&2; exit 1; }
nfiles=$(ls "$ST"/*.json | wc -l)
bytes=$(cat "$ST"/*.json | wc -c)

o= c= j=
i=0
while [ $i -lt $RUNS ]; do
	time_cmd t "$ORCHD" outputs "$P" --json >/dev/null || exit 1
	o="$o $t"
	time_cmd t sh -c 'cat "$1"/*.json > /dev/null' sh "$ST" || exit 1
	c="$c $t"
	if command -v jq >/dev/null; then
		time_cmd t sh -c 'jq -c -s "map(.outputs)" "$1"/*.json > /dev/null' sh "$ST" || exit 1
		j="$j $t"
	fi
	i=$((i + 1))
done
O=$(median $o) C=$(median $c)
/usr/bin/time -f %M -o "$TMP/rss" "$ORCHD" outputs "$P" --json >/dev/null
printf '%-46s %8s  %s\n' "$N stacks, $nfiles files, $bytes bytes (ms)" median "runs"
printf '%-46s %8d  %s\n' "orchd outputs --json" "$O" "$o"
printf '%-46s %8d  %s\n' "cat stacks/*.json" "$C" "$c"
if [ -n "$j" ]; then
	J=$(median $j)
	printf '%-46s %8d  %s\n' "jq -c -s 'map(.outputs)' stacks/*.json" "$J" "$j"
fi
echo
echo "ratio orchd outputs / cat: $(ratio "$O" "$C")x"
[ -z "$j" ] || echo "ratio orchd outputs / jq:  $(ratio "$O" "$J")x"
echo "orchd outputs peak RSS: $(tail -n 1 "$TMP/rss") KiB"
