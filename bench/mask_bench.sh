#!/bin/sh
# mask_bench.sh [BUILD] [MIB]: the secret masker (orchd_mask_apply) alone,
# driven by bench/mask_driver.c (built here against BUILD's objects): MIB
# (default 64) MiB of 80-byte log lines, half of each line hex digits, one
# line in 100 holding a secret, masked line by line with 1, 10, 100 and
# 1000 registered 32-hex-digit tokens.  Baseline, same run: 1 secret; the
# ratio says how much 1000 secrets slow a line down.  Median of 3.
set -u
. "$(dirname "$0")/lib.sh"
bench_setup "${1:-build}"
MIB=${2:-64}
cd "$SRC" || exit 2
cc -std=c17 -O2 -D_GNU_SOURCE -Icommon -Iprotocol -Iorchestrator $(pkg-config --cflags json-c) \
	-o "$TMP/mask_driver" bench/mask_driver.c "$BUILD/obj/orchestrator/core/logging.o" \
	"$BUILD/obj/common/util.o" "$BUILD/lib/liborchd-protocol.a" $(pkg-config --libs json-c) ||
	exit 2
printf '%-32s %8s  %s\n' "secrets (median of 3)" "MiB/s" "runs (MiB/s)"
for n in 1 10 100 1000; do
	runs=
	for r in 1 2 3; do
		out=$("$TMP/mask_driver" "$n" "$MIB") || exit 1
		runs="$runs ${out#*mib_per_s=}"
		runs=${runs%% masked=*}
	done
	# median of decimals: sort numerically
	m=$(printf '%s\n' $runs | sort -g | sed -n 2p)
	eval "R$n=$m"
	printf '%-32s %8s  %s\n' "$n" "$m" "$runs"
done
echo
echo "ratio 1000 secrets / 1 secret: $(awk -v a="$R1000" -v b="$R1" 'BEGIN { printf "%.2f", a / b }')x throughput"
