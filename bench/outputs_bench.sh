#!/bin/sh
# outputs_bench.sh [BUILD] — cost of the local state engine: write then read
# back N stacks with K outputs each, plain and encrypted (AES-256-GCM; the
# scrypt key derivation, ~0.1 s, is paid once per process and included).
# Every write is fsync'ed twice (file and directory), so write_ms mostly
# measures the disk.  Uses the test helper tests/helpers/statewriter.
set -eu
BUILD=${1:-build}
HELPER=$BUILD/tests/helpers/statewriter
[ -x "$HELPER" ] || { echo "outputs_bench: build $HELPER first (make check)" >&2; exit 2; }
DIR=$(mktemp -d "${TMPDIR:-/tmp}/orchd-bench-XXXXXX")
trap 'rm -rf "$DIR"' EXIT INT TERM
for spec in "100 10" "20 1000"; do
	set -- $spec
	"$HELPER" "$DIR/plain" s bench "$1" "$2"
	ORCHD_PASSPHRASE=bench-passphrase "$HELPER" "$DIR/secret" s bench "$1" "$2" secret
done
