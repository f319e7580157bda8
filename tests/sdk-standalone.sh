#!/usr/bin/env bash
# The SDK as an out-of-tree author has it.  Usage:
#
#   tests/sdk-standalone.sh INST PREFIX OUT
#
# INST and PREFIX: an orchd installed with `make install DESTDIR=INST
# PREFIX=PREFIX`.  Each first-party extension directory is copied out of
# the source tree (so nothing but the installed SDK is within reach), built
# with its own Makefile against INST (ORCHD_PREFIX=INST/PREFIX: the
# installed orchd-protocol.pc, its header, library and warning set with
# -Werror) and installed with DESTDIR=OUT PREFIX=PREFIX.  Then the installed
# orchd runs examples/hello/pipeline.yaml with --extensions-dir pointing at
# the standalone exec.  Exits non-zero when any of that fails.
set -euo pipefail

if [ $# -ne 3 ]; then
	echo "usage: $0 INST PREFIX OUT" >&2
	exit 2
fi
inst=$1 prefix=$2 out=$3
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for dir in "$src"/extensions/*/; do
	name=$(basename "$dir")
	echo "sdk: building the $name extension standalone"
	cp -R "$dir" "$work/$name"
	make -C "$work/$name" ORCHD_PREFIX="$inst$prefix"
	make -C "$work/$name" install ORCHD_PREFIX="$inst$prefix" DESTDIR="$out" PREFIX="$prefix"
done

extdir=$out$prefix/libexec/orchd/extensions
orchd=$inst$prefix/bin/orchd
# the standalone exec, not the one installed with orchd, is the one found
"$orchd" extensions --extensions-dir "$extdir" | grep -q "^exec .* $extdir/orchd-ext-exec\$" || {
	echo "sdk: orchd does not pick $extdir/orchd-ext-exec" >&2
	exit 1
}
echo "sdk: the installed orchd runs examples/hello with the standalone exec"
"$orchd" run "$src/examples/hello/pipeline.yaml" --extensions-dir "$extdir" \
	--state-dir "$work/state"
