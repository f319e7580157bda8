#!/bin/sh
# Run the fuzz targets: run.sh FUZZ_DIR TIME RUNS NAME...  (make fuzz).
# Each target runs for TIME seconds, or RUNS executions when RUNS is not
# empty, on a working corpus FUZZ_DIR/corpus/NAME (kept between runs) plus
# the seeds that mkseeds.sh builds from the tree, with its dictionary
# tests/fuzz/NAME.dict when there is one; inputs are capped at a few KiB.
# A crash, leak, timeout (10 s per input), out-of-memory (2 GiB) or
# sanitizer report stops that target and leaves the input in
# FUZZ_DIR/findings/; the script goes on with the next target and exits 1
# if any failed.  One summary line per target:
#   fuzz: NAME: N runs in S s (R/s), corpus C, ok|FAILED
set -u
fz=$1 time=$2 runs=$3
shift 3

sh tests/fuzz/mkseeds.sh "$fz" || exit 1
mkdir -p "$fz/findings"
failed=
# (the loop list is expanded once: `set --` below only builds the options)
for name in "$@"; do
	corpus=$fz/corpus/$name
	log=$fz/$name.log
	mkdir -p "$corpus"
	# longest input: a pipeline file or a record of a few KiB; a protocol
	# stream of a few lines (its cost is per line)
	case $name in
	fuzz_protocol) max_len=1024 ;;
	fuzz_refs) max_len=4096 ;;
	*) max_len=8192 ;;
	esac
	set -- -artifact_prefix="$fz/findings/$name-" -timeout=10 -rss_limit_mb=2048 \
		-max_len=$max_len -print_final_stats=1
	if [ -n "$runs" ]; then
		set -- "$@" -runs="$runs"
	else
		set -- "$@" -max_total_time="$time"
	fi
	[ -f "tests/fuzz/$name.dict" ] && set -- "$@" -dict="tests/fuzz/$name.dict"
	# the local engine warns on stderr for each torn history line
	[ "$name" = fuzz_local ] && set -- "$@" -close_fd_mask=2
	# and orchd report says why a file is not a report
	[ "$name" = fuzz_report ] && set -- "$@" -close_fd_mask=2
	echo "fuzz: $name: $fz/$name $* $corpus $fz/seeds/$name"
	start=$(date +%s)
	"$fz/$name" "$@" "$corpus" "$fz/seeds/$name" >"$log" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	n=${n:-0}
	status=ok
	if [ $rc -ne 0 ]; then
		status=FAILED
		failed="$failed $name"
		grep -E 'ERROR|SUMMARY|check failed|Test unit written|deadly signal' "$log" | head -n 20
		echo "fuzz: $name: full log in $log"
	fi
	echo "fuzz: $name: $n runs in $secs s ($((n / (secs > 0 ? secs : 1)))/s)," \
		"corpus $(ls "$corpus" | wc -l), $status"
done
if [ -n "$failed" ]; then
	echo "fuzz: FAILED:$failed (inputs in $fz/findings/, see tests/fuzz/README.md)"
	exit 1
fi
echo "fuzz: all targets ok"
