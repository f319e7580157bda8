#!/bin/sh
# log_bench_orchd.sh [BUILD] [MIB]: log throughput through the real orchd run.
#
# One exec instance runs `yes LINE | head -c MIB MiB` (default 1024 MiB of
# 60-byte lines) through `orchd run`, console to /dev/null.  Lines flow
#   command --pipe (the extension's stderr, PROTOCOL.md §4)--> orchd
#   (chunks of whole lines: UTF-8 check, mask, console block, bounded log)
#   --> /dev/null
# Baseline, same run: `yes LINE | head -c MIB MiB | cat > /dev/null`.
# Prints MiB/s of each, the ratio (goal >= 0.5x) and orchd's peak RSS (goal
# <= 32 MiB).  To show where the time goes it also times the first stage
# alone (orchd-ext-exec driven by a canned hello + apply, its stderr, which
# carries the command's output, piped to `cat > /dev/null`) and the CPU
# seconds of each run
# (GNU time: the process and all its children).  PERF=1 adds a perf profile
# of the orchd run (top symbols per process).
set -u
. "$(dirname "$0")/lib.sh"
bench_setup "${1:-build}"
MIB=${2:-1024}
BYTES=$((MIB * 1024 * 1024))
EXT=$BUILD/libexec/orchd/extensions/orchd-ext-exec
LINE='some log line of about sixty bytes .......................'
CMD="yes '$LINE' | head -c $BYTES"

mkdir "$TMP/p"
cat > "$TMP/p/pipeline.yaml" <<YAML
logs:
  core:
    stack: b
  exec:
    - name: flood
      command: [sh, -c, "$CMD"]
YAML

# timed CMD...: run CMD under GNU time; sets T (wall ms), CPU (user+sys s),
# RSS (KiB)
timed()
{
	time_cmd T /usr/bin/time -f '%U %S %M' -o "$TMP/time" "$@" || return 1
	CPU=$(tail -n 1 "$TMP/time" | awk '{ printf "%.2f", $1 + $2 }')
	RSS=$(tail -n 1 "$TMP/time" | awk '{ print $3 }')
}

# 1. baseline
timed sh -c "$CMD | cat > /dev/null" || exit 1
base_ms=$T base_cpu=$CPU

# 2. the first stage alone: orchd-ext-exec, protocol stream to a pipe
hello='{"type":"hello","protocol":{"min":1,"max":1},"orchd_version":"0.1.0"}'
action="{\"type\":\"action\",\"action\":\"apply\",\"instance\":\"flood\",\"stack\":\"b-exec-flood\",\"config\":{\"command\":[\"sh\",\"-c\",\"$CMD\"]},\"state\":null,\"outputs\":{},\"workdir\":\"$TMP\"}"
mkfifo "$TMP/in" "$TMP/proto"
# stdin stays open (EOF before the result is a cancel) until the result;
# then EOF ends the extension's session (PROTOCOL.md §7.6).  The command's
# output comes on the extension's stderr (into cat), the protocol messages
# on its stdout (into the fifo the result is looked for in)
t0=$(now_ms)
/usr/bin/time -f '%U %S %M' -o "$TMP/time" sh -c '"$1" < "$2" 2>&1 > "$3" | cat > /dev/null' \
	sh "$EXT" "$TMP/in" "$TMP/proto" &
pid=$!
exec 3>"$TMP/in"
printf '%s\n%s\n' "$hello" "$action" >&3
grep -q -m 1 '"type":"result"' < "$TMP/proto" ||
	{ echo "log_bench_orchd: orchd-ext-exec sent no result" >&2; exit 1; }
exec 3>&-
wait $pid || { echo "log_bench_orchd: orchd-ext-exec failed" >&2; exit 1; }
ext_ms=$(($(now_ms) - t0))
ext_cpu=$(tail -n 1 "$TMP/time" | awk '{ printf "%.2f", $1 + $2 }')

# 3. orchd run
timed "$ORCHD" run "$TMP/p/pipeline.yaml" >/dev/null 2>&1 ||
	{ echo "log_bench_orchd: orchd run failed" >&2; "$ORCHD" run "$TMP/p/pipeline.yaml" 2>&1 | tail -n 5 >&2; exit 1; }
orchd_ms=$T orchd_cpu=$CPU orchd_rss=$RSS
ext_rep_cpu=$(jq -r '.instances[0].cpu_ms' "$TMP"/p/.orchd/runs/*/report.json 2>/dev/null || echo '?')

mibs() { awk -v m="$MIB" -v t="$1" 'BEGIN { if (t <= 0) t = 1; printf "%.0f", m * 1000 / t }'; }
printf '%-52s %8s %8s %8s\n' "$MIB MiB of 60-byte lines" "ms" "MiB/s" "CPU s"
printf '%-52s %8d %8s %8s\n' "yes | head | cat > /dev/null (baseline)" "$base_ms" "$(mibs "$base_ms")" "$base_cpu"
printf '%-52s %8d %8s %8s\n' "stage 1: orchd-ext-exec alone 2>&1 | cat > /dev/null" "$ext_ms" "$(mibs "$ext_ms")" "$ext_cpu"
printf '%-52s %8d %8s %8s\n' "orchd run (console > /dev/null)" "$orchd_ms" "$(mibs "$orchd_ms")" "$orchd_cpu"
echo
echo "throughput ratio orchd / cat: $(ratio "$base_ms" "$orchd_ms")x  (goal >= 0.5x)"
echo "stage 1 alone / cat:          $(ratio "$base_ms" "$ext_ms")x"
echo "orchd peak RSS: $orchd_rss KiB = $(awk -v r="$orchd_rss" 'BEGIN { printf "%.1f", r / 1024 }') MiB  (goal <= 32 MiB)"
echo "CPU of the orchd run: ${orchd_cpu} s in all; the exec extension and its command: ${ext_rep_cpu} ms (report cpu_ms)"

if [ "${PERF:-0}" = 1 ] && command -v perf >/dev/null; then
	echo
	echo "perf profile of orchd run (all processes, top 25 by samples):"
	rm -rf "$TMP/p/.orchd"
	if perf record -q -F 499 -o "$TMP/perf.data" -- "$ORCHD" run "$TMP/p/pipeline.yaml" >/dev/null 2>&1; then
		perf report -q -i "$TMP/perf.data" --sort comm,dso,sym --stdio 2>/dev/null |
			grep -v '^$' | head -n 25
	else
		echo "(perf record failed)"
	fi
fi
