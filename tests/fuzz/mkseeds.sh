#!/bin/sh
# Build the seed corpora of the fuzz targets from the tree (nothing large is
# committed): mkseeds.sh FUZZ_DIR.  Run from the source root; writes
# FUZZ_DIR/seeds/NAME/ for each target, from scratch.
#   fuzz_loader   examples/*.yaml, examples/*/pipeline.yaml, the invalid
#                 corpus tests/configs/invalid/*.yaml, tests/fuzz/seeds/loader/
#   fuzz_protocol protocol/vectors/messages.jsonl: each case's raw line (with
#                 a header byte for mode, direction and chunking), and all of
#                 them as one stream; tests/fuzz/seeds/protocol/
#   fuzz_refs     every line of those YAML files holding '${{', from the
#                 first '"' or ': ' on; tests/fuzz/seeds/refs/
#   fuzz_local    records and a history written by the engine itself
#                 (fuzz_local with ORCHD_FUZZ_SEEDS), tests/fuzz/seeds/local/
#   fuzz_report   report.json files of real runs, tests/fuzz/seeds/report/
set -eu
fz=$1
seeds=$fz/seeds
rm -rf "$seeds"
mkdir -p "$seeds/fuzz_loader" "$seeds/fuzz_protocol" "$seeds/fuzz_refs" "$seeds/fuzz_local" \
	"$seeds/fuzz_report"

yamls=$(ls examples/*.yaml examples/*/pipeline.yaml tests/configs/invalid/*.yaml)
for f in $yamls; do
	cp "$f" "$seeds/fuzz_loader/$(echo "$f" | tr / _)"
done

i=0
grep -h '\${{' $yamls | sed -e 's/^[^"]*"//' -e 's/"[^"]*$//' | sort -u |
	while IFS= read -r line; do
		i=$((i + 1))
		printf '%s' "$line" > "$seeds/fuzz_refs/yaml-$i"
	done

python3 - "$seeds/fuzz_protocol" protocol/vectors/messages.jsonl <<'EOF'
import json, sys
out, vectors = sys.argv[1], sys.argv[2]
lines = []
for n, text in enumerate(open(vectors, encoding="utf-8")):
    text = text.strip()
    if not text or text.startswith("#"):
        continue
    case = json.loads(text)
    if "line" in case:
        raw = case["line"].encode("utf-8", "surrogatepass")
    elif "line_hex" in case:
        raw = bytes.fromhex(case["line_hex"])
    else:
        continue  # line_gen: megabytes, the fuzzer makes long lines itself
    # header: byte 0 bit 1 = direction from_ext, bits 2-4 = 0 (OP_MAX_LINE)
    d = 2 if case["dir"] == "from_ext" else 0
    open("%s/vector-%03d" % (out, n), "wb").write(bytes([d, n & 0xff]) + raw + b"\n")
    lines.append((d, raw))
for d in (0, 2):
    stream = b"".join(raw + b"\n" for dd, raw in lines if dd == d)
    open("%s/stream-%d" % (out, d), "wb").write(bytes([d | 1, 7]) + stream)
EOF

ORCHD_FUZZ_SEEDS=$seeds/fuzz_local "$fz/fuzz_local" -runs=0 >/dev/null 2>&1

for t in loader protocol refs local report; do
	if [ -d "tests/fuzz/seeds/$t" ]; then
		cp tests/fuzz/seeds/$t/* "$seeds/fuzz_$t/"
	fi
done
for t in loader protocol refs local report; do
	printf 'seeds: fuzz_%s: %s files\n' "$t" "$(ls "$seeds/fuzz_$t" | wc -l)"
done
