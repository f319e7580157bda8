#!/bin/sh
# config_bench.sh [BUILD] -- cost of loading a pipeline: `orchd graph
# --format json` (parse, model, validation, topological order, output)
# against bare libyaml event parsing of the same file (bench/yaml_parse.c),
# at 1 000 and 10 000 instances, best of 5 runs each.  Prints the times,
# their ratio (goal <= 1.5) and orchd's peak RSS (goal <= 64 MiB at 10 000).
# Then the same instances made from a template imported from a second file
# (gen_pipeline.py --templates): libyaml parses both files, orchd composes
# them (import, 10 000 template expansions) before the same work.
set -eu
BUILD=${1:-build}
ORCHD=$BUILD/bin/orchd
SRC=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$ORCHD" ] || { echo "config_bench: build $ORCHD first (make)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "config_bench: needs /usr/bin/time (package time)" >&2; exit 2; }
DIR=$(mktemp -d "${TMPDIR:-/tmp}/orchd-config-bench-XXXXXX")
trap 'rm -rf "$DIR"' EXIT INT TERM

cc -O2 -o "$BUILD/yaml_parse" "$SRC/bench/yaml_parse.c" $(pkg-config --cflags --libs yaml-0.1)
# A fake exec extension, so that validation knows the type without
# depending on what else is installed.
mkdir "$DIR/ext"
printf '#!/bin/sh\nexit 0\n' > "$DIR/ext/orchd-ext-exec"
chmod +x "$DIR/ext/orchd-ext-exec"

# best_ms CMD...: the lowest wall time of 5 runs, in milliseconds.
best_ms() {
	best=
	for _ in 1 2 3 4 5; do
		t0=$(date +%s%N)
		"$@" > /dev/null
		t1=$(date +%s%N)
		ms=$(( (t1 - t0) / 1000000 ))
		if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
	done
	echo "$best"
}

# orchd's fixed start-up cost (dynamic linking of libgit2, libcurl, ...),
# measured alone so that the ratio can be read with it in mind.
s=$(best_ms "$ORCHD" version)
echo "orchd start-up (orchd version): ${s} ms"
printf '%-10s %10s %12s %10s %8s %14s\n' instances "bytes" "libyaml_ms" "orchd_ms" ratio "orchd_rss_kib"
for n in 1000 10000; do
	f=$DIR/p$n.yaml
	python3 "$SRC/bench/gen_pipeline.py" "$n" > "$f"
	ORCHD_EXTENSIONS_PATH_ONLY=1 "$ORCHD" --extensions-dir "$DIR/ext" graph "$f" > /dev/null
	y=$(best_ms "$BUILD/yaml_parse" "$f")
	o=$(best_ms env ORCHD_EXTENSIONS_PATH_ONLY=1 "$ORCHD" --extensions-dir "$DIR/ext" graph --format json "$f")
	rss=$(ORCHD_EXTENSIONS_PATH_ONLY=1 /usr/bin/time -f %M "$ORCHD" --extensions-dir "$DIR/ext" \
		graph --format json "$f" 2>&1 > /dev/null | tail -n 1)
	ratio=$(awk -v o="$o" -v y="$y" 'BEGIN { if (y < 1) y = 1; printf "%.2f", o / y }')
	printf '%-10s %10s %12s %10s %8s %14s\n' "$n" "$(wc -c < "$f")" "$y" "$o" "$ratio" "$rss"
done
printf '%-10s %10s %12s %10s %8s %14s   (template + import)\n' instances "bytes" "libyaml_ms" "orchd_ms" ratio "orchd_rss_kib"
for n in 1000 10000; do
	mkdir -p "$DIR/t$n"
	python3 "$SRC/bench/gen_pipeline.py" "$n" --templates "$DIR/t$n"
	f=$DIR/t$n/pipeline.yaml
	ORCHD_EXTENSIONS_PATH_ONLY=1 "$ORCHD" --extensions-dir "$DIR/ext" graph "$f" > /dev/null
	y=$(best_ms "$BUILD/yaml_parse" "$f" "$DIR/t$n/lib.yaml")
	o=$(best_ms env ORCHD_EXTENSIONS_PATH_ONLY=1 "$ORCHD" --extensions-dir "$DIR/ext" graph --format json "$f")
	rss=$(ORCHD_EXTENSIONS_PATH_ONLY=1 /usr/bin/time -f %M "$ORCHD" --extensions-dir "$DIR/ext" \
		graph --format json "$f" 2>&1 > /dev/null | tail -n 1)
	ratio=$(awk -v o="$o" -v y="$y" 'BEGIN { if (y < 1) y = 1; printf "%.2f", o / y }')
	printf '%-10s %10s %12s %10s %8s %14s\n' "$n" "$(cat "$f" "$DIR/t$n/lib.yaml" | wc -c)" "$y" "$o" "$ratio" "$rss"
done
