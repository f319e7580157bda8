#!/bin/sh
# pulumi_seed_bench.sh [BUILD] [N...] -- orchd's pulumi state engine against
# the seed's own design, in the same run: a Python orchestrator driving one
# Pulumi stack per instance through the Automation API with inline programs
# (bench/pulumi_seed.py, pip `pulumi` of the CLI's version in a venv this
# script makes under its temp dir).  For each N (default 20 and 100), both sides
# store N instances' outputs (url plain, token secret) in N stacks of a
# fresh file:// backend, then read them all back decrypted and check them:
#   seed   python pulumi_seed.py N DIR: serial create_or_select_stack + up,
#          then select_stack + outputs (wall time of the whole process)
#   orchd  orchd run -j 8 of N exec instances (core.engine pulumi), then
#          orchd outputs --json --show-secrets (wall time of each, and sum)
# Both run the same pulumi CLI through a counting wrapper first on PATH (one
# line per process).  Needs pulumi on PATH (make tools) and PyPI access.
set -eu
. "$(dirname "$0")/lib.sh"
SRC=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=$(bash "$SRC/tests/tools/install-tools.sh" --print-path 2>/dev/null || true)
[ -z "$TOOLS" ] || PATH=$TOOLS:$PATH
REAL=$(command -v pulumi 2>/dev/null) ||
	{ echo "pulumi_seed_bench: pulumi not on PATH (run make tools)" >&2; exit 2; }
bench_setup "${1:-build}"
[ $# -eq 0 ] || shift
NS=${*:-20 100}
export ORCHD_PASSPHRASE=bench-passphrase PULUMI_CONFIG_PASSPHRASE=bench-passphrase
unset ORCHD_PASSPHRASE_FILE PULUMI_CONFIG_PASSPHRASE_FILE PULUMI_BACKEND_URL PULUMI_HOME || true

VERSION=$("$REAL" version | sed 's/^v//')
if ! python3 -m venv "$TMP/venv" >"$TMP/venv.log" 2>&1 ||
   ! "$TMP/venv/bin/pip" install --quiet "pulumi==$VERSION" >>"$TMP/venv.log" 2>&1; then
	echo "pulumi_seed_bench: cannot install pulumi $VERSION from PyPI:" >&2
	tail -n 5 "$TMP/venv.log" >&2
	exit 2
fi
PY=$TMP/venv/bin/python

# the counting wrapper: transparent (execs the real CLI, so its plugins
# beside it are found as before), same for both sides
COUNT=$TMP/pulumi.count
mkdir "$TMP/shim"
printf '#!/bin/sh\necho "$1" >> "%s"\nexec "%s" "$@"\n' "$COUNT" "$REAL" > "$TMP/shim/pulumi"
chmod +x "$TMP/shim/pulumi"
PATH=$TMP/shim:$PATH
procs() { wc -l < "$COUNT" | tr -d ' '; }

# fail LOG WHAT: a run or a check failed
fail() { echo "pulumi_seed_bench: $2 failed:" >&2; tail -n 20 "$1" >&2; exit 1; }

# gen_pipeline N FILE: N exec instances t0..t{N-1}, each writing url and a
# secret token to $ORCHD_OUTPUT
gen_pipeline()
{
	{
		printf 'bench:\n  core:\n    stack: dev\n    engine: {type: pulumi, project: orchdbench}\n  exec:\n'
		_i=0
		while [ $_i -lt "$1" ]; do
			printf '    - name: t%d\n      command: [sh, -c, '\''echo url=http://host/%d >> "$ORCHD_OUTPUT"; echo token=secret-%d >> "$ORCHD_OUTPUT"'\'']\n      secret_outputs: [token]\n' $_i $_i $_i
			_i=$((_i + 1))
		done
	} > "$2"
}

ROWS=
for N in $NS; do
	D=$TMP/n$N
	mkdir -p "$D/seed" "$D/orchd"
	# (a) the seed
	: > "$COUNT"
	if ! time_cmd S "$PY" "$SRC/bench/pulumi_seed.py" "$N" "$D/seed" >"$D/seed.log" 2>&1; then
		fail "$D/seed.log" "seed N=$N"
	fi
	grep '^seed ' "$D/seed.log" || fail "$D/seed.log" "seed N=$N (no result line)"
	SP=$(procs)
	# (b) orchd: run, then read back with the secrets decrypted
	gen_pipeline "$N" "$D/orchd/pipeline.yaml"
	: > "$COUNT"
	if ! time_cmd R "$ORCHD" run -j 8 -q "$D/orchd/pipeline.yaml" >"$D/run.log" 2>&1; then
		fail "$D/run.log" "orchd run N=$N"
	fi
	if ! time_cmd O "$ORCHD" outputs --json --show-secrets "$D/orchd/pipeline.yaml" \
		>"$D/outputs.json" 2>"$D/outputs.err"; then
		fail "$D/outputs.err" "orchd outputs N=$N"
	fi
	OP=$(procs)
	"$PY" -c 'import json, sys
n, d = int(sys.argv[1]), json.load(open(sys.argv[2]))
bad = [i for i in range(n) if d.get("exec.t%d" % i) != {"url": "http://host/%d" % i, "token": "secret-%d" % i}]
sys.exit("wrong outputs for t%s" % bad if bad else 0)' "$N" "$D/outputs.json" >"$D/check.log" 2>&1 ||
		fail "$D/check.log" "check of orchd outputs N=$N"
	ROWS="$ROWS$N $S $R $O $((R + O)) $(ratio $((R + O)) "$S") $SP $OP
"
	rm -rf "$D"
done

echo
printf '%6s %9s %12s %13s %10s %11s %18s\n' N "seed ms" "orchd run ms" "orchd read ms" \
	"orchd ms" "orchd/seed" "pulumi procs s/o"
printf '%s' "$ROWS" | while read -r n s r o t q sp op; do
	printf '%6s %9s %12s %13s %10s %10sx %18s  (goal <= 0.25x)\n' "$n" "$s" "$r" "$o" "$t" "$q" "$sp/$op"
done
