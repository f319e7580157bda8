#!/bin/sh
# peer_bench.sh [BUILD] [N]: orchd beside a peer task runner, doit (PyPI,
# pinned below, in a venv this script makes under its temp dir), and make,
# in the same run, on the same two workloads:
#   noop  N (default 1000) independent no-op commands (/bin/true), 8 at a
#         time: make -j8, doit -n 8 (a task per command; doit keeps its task
#         state in its .doit.db, as orchd keeps stacks), orchd run -j8 (exec
#         instances, state on disk)
#   dag   8 wide x 10 deep of `sleep 0.1`, each step depending on the 8 of
#         the level before (dag_bench.sh's "levels"), 8 at a time; the
#         critical path is 1.0 s
# Median of 3 per tool; ratios of orchd to make and to doit, and of doit to
# make.  Needs network access to PyPI for the venv (once per run).
set -u
. "$(dirname "$0")/lib.sh"
bench_setup "${1:-build}"
N=${2:-1000}
RUNS=3
DOIT_VERSION=0.37.0

if ! python3 -m venv "$TMP/venv" >"$TMP/venv.log" 2>&1 ||
   ! "$TMP/venv/bin/pip" install -q "doit==$DOIT_VERSION" >>"$TMP/venv.log" 2>&1; then
	echo "peer_bench: cannot install doit $DOIT_VERSION from PyPI:" >&2
	tail -n 5 "$TMP/venv.log" >&2
	exit 2
fi
DOIT=$TMP/venv/bin/doit

# --- the workloads, three ways ---------------------------------------------
mkdir "$TMP/noop" "$TMP/dag"
gen_makefile "$N" "$TMP/noop/Makefile"
awk -v n="$N" 'BEGIN {
	print "bench:\n  core:\n    stack: b\n  exec:"
	for (i = 0; i < n; i++) printf "    - name: t%d\n      command: [/bin/true]\n", i
}' > "$TMP/noop/pipeline.yaml"
cat > "$TMP/noop/dodo.py" <<EOF
DOIT_CONFIG = {"verbosity": 0}

def task_t():
    for i in range($N):
        yield {"name": str(i), "actions": [["/bin/true"]]}
EOF
awk 'BEGIN {
	print "dag:\n  core:\n    stack: b\n  exec:"
	for (l = 0; l < 10; l++)
		for (c = 0; c < 8; c++) {
			printf "    - name: s%d_%d\n      command: [sleep, \"0.1\"]\n", l, c
			if (l == 0)
				continue
			printf "      depends_on: ["
			for (p = 0; p < 8; p++)
				printf "%ss%d_%d", p ? ", " : "", l - 1, p
			printf "]\n"
		}
}' > "$TMP/dag/pipeline.yaml"
awk 'BEGIN {
	printf "all:"
	for (c = 0; c < 8; c++) printf " s9_%d", c
	printf "\n"
	for (l = 0; l < 10; l++)
		for (c = 0; c < 8; c++) {
			printf "s%d_%d:", l, c
			if (l > 0)
				for (p = 0; p < 8; p++) printf " s%d_%d", l - 1, p
			printf "\n\t@sleep 0.1\n"
		}
	printf ".PHONY: all"
	for (l = 0; l < 10; l++) for (c = 0; c < 8; c++) printf " s%d_%d", l, c
	printf "\n"
}' > "$TMP/dag/Makefile"
cat > "$TMP/dag/dodo.py" <<'EOF'
DOIT_CONFIG = {"verbosity": 0}

def task_s():
    for l in range(10):
        for c in range(8):
            yield {"name": "%d_%d" % (l, c), "actions": [["sleep", "0.1"]],
                   "task_dep": ["s:%d_%d" % (l - 1, p) for p in range(8)] if l else []}
EOF

# run3 VAR DIR CMD...: median of 3 timed runs of CMD in DIR (state removed
# before each), in VAR; a failure stops the benchmark
run3()
{
	_v=$1 _d=$2
	shift 2
	_ts=
	for _r in 1 2 3; do
		rm -rf "$_d/.orchd" "$_d"/.doit.db*
		if ! (cd "$_d" && time_cmd _t "$@" >"$TMP/out" 2>&1 && echo "$_t" >"$TMP/t"); then
			echo "peer_bench: failed in $_d: $*" >&2
			tail -n 20 "$TMP/out" >&2
			exit 1
		fi
		_ts="$_ts $(cat "$TMP/t")"
	done
	eval "$_v=\$(median \$_ts)"
	eval "${_v}_runs=\"\$_ts\""
}

printf '%-40s %7s  %s\n' "what (median of 3, ms)" median runs
for w in noop dag; do
	run3 M "$TMP/$w" make -s -j8
	run3 D "$TMP/$w" "$DOIT" -n 8
	run3 O "$TMP/$w" "$ORCHD" run --parallelism 8 pipeline.yaml
	label=$([ $w = noop ] && echo "$N x /bin/true" || echo "DAG 8 x 10 of sleep 0.1")
	printf '%-40s %7s %s\n' "$label: make -j8" "$M" "$M_runs"
	printf '%-40s %7s %s\n' "$label: doit -n 8" "$D" "$D_runs"
	printf '%-40s %7s %s\n' "$label: orchd run -j8" "$O" "$O_runs"
	eval "M_$w=$M D_$w=$D O_$w=$O"
done
echo
echo "noop: orchd / make $(ratio "$O_noop" "$M_noop")x, orchd / doit $(ratio "$O_noop" "$D_noop")x, doit / make $(ratio "$D_noop" "$M_noop")x"
echo "dag:  orchd / make $(ratio "$O_dag" "$M_dag")x, orchd / doit $(ratio "$O_dag" "$D_dag")x, doit / make $(ratio "$D_dag" "$M_dag")x (critical path 1000 ms)"
