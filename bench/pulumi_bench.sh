#!/bin/sh
# pulumi_bench.sh [BUILD] [N] — per-stack cost of the pulumi state engine
# (every write a `pulumi up`, every read a `pulumi stack output`) against the
# embedded local engine: write then read back N stacks (default 10), each
# with 5 plain outputs, 1 secret output and a secret state.  Builds
# bench/engine_driver.c against the engine objects of BUILD (make first).
# Needs pulumi on PATH (make tools; . ~/.cache/orchd/tools/env.sh).
set -eu
BUILD=${1:-build}
N=${2:-10}
SRC=$(cd "$(dirname "$0")/.." && pwd)
OBJ=$BUILD/obj
for o in orchestrator/interfaces/engine.o orchestrator/interfaces/local.o \
	orchestrator/interfaces/pulumi.o common/crypto.o common/hash.o common/util.o \
	common/cache.o; do
	[ -f "$OBJ/$o" ] || { echo "pulumi_bench: $OBJ/$o missing (run make)" >&2; exit 2; }
done
command -v pulumi >/dev/null 2>&1 || { echo "pulumi_bench: pulumi not on PATH (run make tools)" >&2; exit 2; }
DIR=$(mktemp -d "${TMPDIR:-/tmp}/orchd-pulumi-bench-XXXXXX")
trap 'rm -rf "$DIR"' EXIT INT TERM
DRIVER=$DIR/engine_driver
${CC:-cc} -std=c17 -O2 -pthread -D_GNU_SOURCE -I"$SRC/common" -I"$SRC/protocol" -I"$SRC/orchestrator" \
	$(pkg-config --cflags json-c) -o "$DRIVER" "$SRC/bench/engine_driver.c" \
	"$OBJ/orchestrator/interfaces/engine.o" "$OBJ/orchestrator/interfaces/local.o" \
	"$OBJ/orchestrator/interfaces/pulumi.o" "$OBJ/common/crypto.o" "$OBJ/common/hash.o" \
	"$OBJ/common/util.o" "$OBJ/common/cache.o" "$BUILD/lib/liborchd-protocol.a" \
	$(pkg-config --libs json-c libcrypto)
export ORCHD_PASSPHRASE=bench-passphrase
unset ORCHD_PASSPHRASE_FILE
L=$("$DRIVER" local "$DIR/local" "$N" 5)
P=$("$DRIVER" pulumi "$DIR/pulumi" "$N" 5)
echo "$L"
echo "$P"
lp=$(echo "$L" | sed 's/.*per_stack_ms=//')
pp=$(echo "$P" | sed 's/.*per_stack_ms=//')
awk -v l="$lp" -v p="$pp" 'BEGIN {
	if (l <= 0) l = 0.1
	printf "pulumi/local per stack (write+read): %.0fx (%.1f ms vs %.1f ms)\n", p / l, p, l
}'
