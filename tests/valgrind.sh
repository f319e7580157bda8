#!/bin/sh
# valgrind.sh [BUILD]: orchd's main paths under valgrind (memcheck).
#
#   validate and graph of every example pipeline
#   run of examples/hello in a temp copy (only orchd is checked), then
#   status, outputs (text and --json), history, plan and a second run
#   run of examples/hello again with --trace-children=yes, skipping every
#   child under /bin, /usr and /usr/local (sh, date, ...), so the
#   orchd-ext-exec processes are checked too
#   a failing pipeline (exit 1), an invalid configuration (exit 2), a YAML
#   syntax error, extensions, version
#   composition (examples/multi-env under --env prod, --explain, an unknown
#   environment, an import cycle) and affected / run --since on a git
#   repository
#
# Errors (invalid reads/writes, uninitialised values, bad frees, definite
# and indirect leaks) make valgrind exit 99 (--error-exitcode).  File
# descriptors: --track-fds=yes lists what is open at exit; a descriptor
# above 2 that the process opened itself and never closed is a finding,
# and so is one above 2 that an extension inherited from orchd (orchd
# leaking it across exec).  Descriptors orchd inherits from this script are
# ignored.  Each case's log is kept in a temp dir and printed on failure.
# Exit 0 when every case is clean, 1 otherwise.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-build}" && pwd)
ORCHD=$BUILD/bin/orchd
[ -x "$ORCHD" ] || { echo "valgrind.sh: $ORCHD not built (make)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind not installed (make deps)" >&2; exit 2; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/orchd-valgrind-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
unset ORCHD_EXTENSIONS_PATH ORCHD_EXTENSIONS_PATH_ONLY || true
# the pinned tools (tofu, sops, ...) that some examples validate with
TOOLS_PATH=$(bash "$SRC/tests/tools/install-tools.sh" --print-path 2>/dev/null || true)
[ -z "$TOOLS_PATH" ] || PATH=$TOOLS_PATH:$PATH
export PATH

VG="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect
	--show-leak-kinds=definite,indirect --error-exitcode=99 --track-fds=yes
	--num-callers=30 --suppressions=$SRC/tests/valgrind.supp"
failed=0
ncase=0

# fd_findings LOG: descriptors > 2 open at exit that the process opened
# (or, for a child of orchd, inherited) -- one line each
fd_findings()
{
	awk -v top="$2" -v tmp="$TMP/" '
		# the log file of valgrind itself shows up in traced children
		index($0, tmp) && /\/log\.[0-9child.]+$/ { next }
		/Open (file|AF_UNIX socket|AF_INET socket|.*) descriptor [0-9]+:/ {
			fd = $0; sub(/.*descriptor /, "", fd); sub(/:.*/, "", fd)
			cur = (fd + 0 > 2) ? $0 : ""; next
		}
		cur != "" && /<inherited from parent>/ {
			if (top != "1") print cur " (inherited from orchd)"
			cur = ""; next
		}
		cur != "" && /(at|by) 0x/ { print cur; cur = "" }
	' "$1"
}

# check NAME EXPECTED_RC TOP LOGPATTERN: judge the logs of a case
check()
{
	name=$1 want=$2 rc=$3
	shift 3
	bad=0
	if [ "$rc" = 99 ]; then
		bad=1
	elif [ "$rc" != "$want" ]; then
		echo "  (exit $rc, expected $want)"
		bad=1
	fi
	for log in "$@"; do
		[ -s "$log" ] || continue
		top=1
		case $log in *.child.*) top=0 ;; esac
		fds=$(fd_findings "$log" $top)
		if [ -n "$fds" ]; then
			echo "$fds" | sed 's/^/  fd: /'
			bad=1
		fi
		if grep -q '== .*\(Invalid\|uninitialised\|definitely lost: [1-9]\|indirectly lost: [1-9]\|Mismatched\|free()\)' "$log"; then
			bad=1
		fi
	done
	ncase=$((ncase + 1))
	if [ $bad = 0 ]; then
		echo "ok    $name"
	else
		echo "FAIL  $name"
		for log in "$@"; do
			[ -s "$log" ] || continue
			echo "---- $log"
			cat "$log"
		done
		failed=$((failed + 1))
	fi
}

# vg NAME EXPECTED_RC ARGS...: orchd ARGS under valgrind, children untraced
vg()
{
	name=$1 want=$2
	shift 2
	log=$TMP/log.$ncase
	# shellcheck disable=SC2086
	$VG --trace-children=no --log-file="$log" "$ORCHD" "$@" >"$TMP/out.$ncase" 2>&1
	check "$name" "$want" $? "$log"
}

# examples: validate and graph (in a temp copy of examples/: validate runs
# each extension's validate, which checks the files an example names, some
# in sibling directories; nothing may depend on the source tree)
mkdir -p "$TMP/ex"
cp -r "$SRC/examples" "$TMP/ex/"
# the example extensions' SDKs beside them, as installed: under isolation
# strict an extension under /tmp sees its own directory, not protocol/sdk
cp -r "$SRC/protocol/sdk/python/orchd_sdk" "$TMP/ex/examples/extensions/python/"
cp "$SRC/protocol/sdk/sh/orchd.sh" "$TMP/ex/examples/extensions/sh/"
for f in examples/*.yaml examples/*/pipeline.yaml examples/extensions/*/pipeline.yaml; do
	[ -f "$SRC/$f" ] || continue
	p=$TMP/ex/$f
	d=$(dirname "$p")
	set --
	case $f in examples/extensions/*) set -- --extensions-dir "$d" ;; esac
	want=0
	vg "validate $f" $want "$@" validate "$p"
	vg "graph $f" 0 "$@" graph "$p"
	vg "graph --format mermaid $f" 0 "$@" graph --format mermaid "$p"
done

# hello: run, then the read-only commands, plan, a second run
mkdir "$TMP/hello"
cp "$SRC/examples/hello/pipeline.yaml" "$TMP/hello/"
H=$TMP/hello/pipeline.yaml
vg "run examples/hello" 0 run "$H"
vg "status examples/hello" 0 status "$H"
vg "status --json examples/hello" 0 status --json "$H"
vg "outputs examples/hello" 0 outputs "$H"
vg "outputs --json examples/hello" 0 outputs --json "$H"
vg "outputs exec.greet" 0 outputs "$H" exec.greet
vg "history examples/hello" 0 history "$H"
vg "history --json exec.greet" 0 history --json "$H" exec.greet
vg "plan examples/hello" 0 plan "$H"
vg "run examples/hello (second run, state read back)" 0 run "$H"
vg "run --report --junit --log-format json" 0 run --report "$TMP/r.json" \
	--junit "$TMP/r.xml" --log-format json "$H"
vg "run with every report (html, trace, metrics)" 0 run --report-html "$TMP/r.html" \
	--trace "$TMP/r.trace" --metrics "$TMP/r.prom" "$H"
vg "report --html --junit --trace --metrics of a stored report" 0 report "$TMP/r.json" \
	--html "$TMP/r2.html" --junit "$TMP/r2.xml" --trace "$TMP/r2.trace" --metrics "$TMP/r2.prom"

# hello again with the exec extension traced as well: one log per process;
# children found under /bin, /usr/bin, /usr/local/bin (sh, date, ...) are
# not traced
mkdir "$TMP/hello2" "$TMP/vg2"
cp "$SRC/examples/hello/pipeline.yaml" "$TMP/hello2/"
# (without -q: the Command: line tells the processes apart)
# shellcheck disable=SC2086
$(echo $VG | sed 's/ -q / /') --trace-children=yes --trace-children-skip='/bin/*,/usr/*,/sbin/*' \
	--log-file="$TMP/vg2/log.%p" "$ORCHD" run "$TMP/hello2/pipeline.yaml" \
	>"$TMP/out.hello2" 2>&1
rc=$?
# orchd's own log: a fork of orchd that never execs (the sandbox probe in a
# PID namespace of its own: "Parent PID: 0") has the same command line
orchd_pid=$(for log in "$TMP"/vg2/log.*; do
	grep -q '^==[0-9]*== Parent PID: 0$' "$log" && continue
	sed -n 's/^==\([0-9]*\)== Command: .*\/bin\/orchd .*/\1/p' "$log"
done | head -n 1)
n_ext=0
for log in "$TMP"/vg2/log.*; do
	pid=${log##*.}
	if [ "$pid" != "$orchd_pid" ]; then
		grep -q 'Command: .*orchd-ext-exec' "$log" && n_ext=$((n_ext + 1))
		mv "$log" "$TMP/vg2/log.child.$pid"
	fi
done
echo "      ($n_ext orchd-ext-exec processes traced)"
[ "$n_ext" -ge 8 ] || { echo "  expected 8 traced orchd-ext-exec (validate + apply of 4 steps)"; rc=98; }
check "run examples/hello, orchd-ext-exec traced" 0 "$rc" "$TMP"/vg2/log.*

# a failing step, an invalid configuration, a YAML error
mkdir "$TMP/bad"
cat > "$TMP/bad/fail.yaml" <<'YAML'
fails:
  core:
    stack: dev
  exec:
    - name: ok
      command: [sh, -c, 'echo fine']
    - name: boom
      depends_on: [ok]
      command: [sh, -c, 'echo going down >&2; exit 3']
    - name: after
      depends_on: [boom]
      command: [echo, never]
YAML
cat > "$TMP/bad/invalid.yaml" <<'YAML'
invalid:
  core:
    stack: dev
    parallelism: many
  exec:
    - name: a
      comand: [echo, a]
    - name: b
      depends_on: [nosuch]
      command: [echo, '${{ exec.a.outputs.missing']
YAML
printf 'broken:\n  core: [\n    stack: dev\n' > "$TMP/bad/syntax.yaml"
vg "run failing pipeline" 1 run "$TMP/bad/fail.yaml"
vg "run failing pipeline --keep-going" 1 run --keep-going "$TMP/bad/fail.yaml"
vg "status after a failure" 0 status "$TMP/bad/fail.yaml"
vg "run --only-failed" 1 run --only-failed "$TMP/bad/fail.yaml"
vg "validate invalid config" 2 validate "$TMP/bad/invalid.yaml"
vg "run invalid config" 2 run "$TMP/bad/invalid.yaml"
vg "validate YAML syntax error" 2 validate "$TMP/bad/syntax.yaml"
vg "validate missing file" 2 validate "$TMP/bad/nosuch.yaml"
# composition: imports, a template, environments; --explain; affected on a
# git repository, an unknown environment, an import cycle
M=$TMP/ex/examples/multi-env/pipeline.yaml
vg "run multi-env --env prod" 0 run --env prod "$M"
vg "outputs multi-env --env prod" 0 outputs --env prod "$M"
vg "validate --explain exec.checkout" 0 validate --env prod --explain exec.checkout "$M"
vg "graph unknown environment" 2 graph --env qa "$M"
(cd "$TMP/ex/examples/multi-env" && git init -q . && git add -A &&
	git -c user.email=t@t -c user.name=t commit -q -m one) >/dev/null 2>&1
sed -i 's/port: 8081/port: 8083/' "$M"
vg "affected --since HEAD" 0 affected --env prod --since HEAD "$M"
vg "affected --format json" 0 affected --env prod --since HEAD --format json "$M"
vg "run --since HEAD" 0 run --env prod --since HEAD "$M"
vg "affected unknown revision" 2 affected --env prod --since nosuch "$M"
mkdir "$TMP/cycle"
printf 'p:\n  core: {imports: [a.yaml]}\n' > "$TMP/cycle/p.yaml"
printf 'core: {imports: [p.yaml]}\n' > "$TMP/cycle/a.yaml"
vg "validate import cycle" 2 validate "$TMP/cycle/p.yaml"
# extension packages: a directory and a git tag (with a build), the list,
# the lock of --from, a pipeline whose lock is out of date, a remove
PK=$TMP/pkg
mkdir -p "$PK"
printf '#!/bin/sh\nexit 0\n' > "$PK/vg.sh"
printf '{"name": "vg", "version": "1.0.0", "protocol": {"min": 1, "max": 1}, "build": "cp vg.sh orchd-ext-vg && chmod +x orchd-ext-vg", "needs": ["sh"]}\n' \
	> "$PK/orchd-ext-vg.manifest.json"
(cd "$PK" && git init -q . && git add -A &&
	git -c user.email=t@t -c user.name=t commit -q -m one && git tag v1.0.0) >/dev/null 2>&1
vg "ext install DIR" 0 ext install --dir "$TMP/extd" "$PK"
vg "ext install git+file@TAG" 0 ext install --dir "$TMP/extd" "git+file://$PK@v1.0.0"
vg "ext list" 0 ext list --dir "$TMP/extd"
mkdir "$TMP/pp"
printf 'p:\n  core:\n    extensions:\n      vg: {source: "git+file://%s", version: "1.0.0"}\n  vg:\n    - name: one\n' "$PK" > "$TMP/pp/p.yaml"
vg "ext install --from (writes orchd.lock)" 0 ext install --dir "$TMP/extd" --from "$TMP/pp/p.yaml"
sed -i 's/1.0.0"}/2.0.0"}/' "$TMP/pp/p.yaml"
vg "validate, the lock out of date" 2 --extensions-dir "$TMP/extd" validate "$TMP/pp/p.yaml"
vg "ext remove" 0 ext remove --dir "$TMP/extd" vg
vg "extensions" 0 extensions
vg "version" 0 version
vg "usage error" 2 run --no-such-option "$H"

echo "valgrind: $ncase cases, $failed failed"
[ $failed = 0 ]
