#!/bin/sh
# tests/jenkins/check.sh BUILD - check examples/jenkins/Jenkinsfile without a
# Jenkins (none is packaged where this project builds):
#  1. it parses: compiled by Groovy 4.0.33 (org.apache.groovy:groovy from
#     Maven Central, sha256 pinned, cached under
#     ${XDG_CACHE_HOME:-$HOME/.cache}/orchd/jenkins/), with java;
#  2. its shell steps work: each `sh '...'` and `script: '...'` string is
#     taken from the file, in order (validate, plan, apply), and run in a
#     workspace holding a two-instance pipeline, with Jenkins' variables
#     set and orchd of BUILD first on PATH, as the stages would: validate
#     exits 0; plan exits 2 (changes, so the gated Approve and Apply
#     stages run); apply exits 0 and writes every report the post section
#     archives (the JUnit checked by tests/formats/junit.sh); the history
#     names the build;
#  3. an abort: Jenkins stops a running step by sending SIGTERM to its
#     process group; the apply step, so stopped, exits and still writes
#     its reports.
# Exit 0 when all hold; 1 with a FAIL line otherwise; 2 when it cannot
# set up (no java, no network).
set -eu
BUILD=$(cd "${1:?usage: check.sh BUILD}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
JF=$SRC/examples/jenkins/Jenkinsfile
GROOVY_VERSION=4.0.33
GROOVY_SHA256=5240a9151289115e4d447d6b6d4cb9ac8a9fc6374e079714dfeeffda42323be8
GROOVY_URL=https://repo1.maven.org/maven2/org/apache/groovy/groovy/$GROOVY_VERSION/groovy-$GROOVY_VERSION.jar
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/orchd/jenkins
JAR=$CACHE/groovy-$GROOVY_VERSION.jar

die() { echo "check.sh: $*" >&2; exit 2; }
fail() { echo "FAIL $*"; exit 1; }

command -v java >/dev/null 2>&1 || die "java not found (Debian: apt-get install openjdk-17-jre-headless)"
mkdir -p "$CACHE"
if ! echo "$GROOVY_SHA256  $JAR" | sha256sum -c - >/dev/null 2>&1; then
	curl -fsSL -o "$JAR.tmp" "$GROOVY_URL" || die "cannot download $GROOVY_URL"
	echo "$GROOVY_SHA256  $JAR.tmp" | sha256sum -c - >/dev/null 2>&1 || die "$GROOVY_URL: wrong sha256"
	mv "$JAR.tmp" "$JAR"
fi

WS=$(mktemp -d "${TMPDIR:-/tmp}/orchd-jenkins-XXXXXX")
trap 'rm -rf "$WS"' EXIT

# 1. the Groovy parser
mkdir "$WS/classes"
cp "$JF" "$WS/Jenkinsfile.groovy"
if ! java -cp "$JAR" org.codehaus.groovy.tools.FileSystemCompiler -d "$WS/classes" \
	"$WS/Jenkinsfile.groovy" > "$WS/groovyc.out" 2>&1; then
	cat "$WS/groovyc.out"
	fail "$JF does not parse"
fi
echo "ok   $JF parses (Groovy $GROOVY_VERSION)"

# 2. its shell steps, in order
python3 - "$JF" "$WS/steps" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
steps = re.findall(r"""(?:\bsh\s+|script:\s*)'([^'\\]*)'""", text)
if len(steps) != 3:
    print(f"FAIL expected 3 shell steps (validate, plan, apply), found {len(steps)}")
    sys.exit(1)
for i, s in enumerate(steps):
    open(f"{sys.argv[2]}.{i}", "w").write(s + "\n")
PY
mkdir "$WS/job"
cat > "$WS/job/pipeline.yaml" <<'YAML'
check:
  exec:
    - name: build
      command: [sh, -c, 'echo version=1.2.3 >> $ORCHD_OUTPUT']
    - name: deploy
      depends_on: [build]
      command: [sh, -c, 'echo deploying $0', '${{ exec.build.outputs.version }}']
YAML
cd "$WS/job"
export PATH="$BUILD/bin:$PATH" NO_COLOR=1 PIPELINE=pipeline.yaml REPORTS=orchd-reports \
	ORCHD_STATE_DIR=.orchd ORCHD_PASSPHRASE=jenkins-check JENKINS_URL=https://ci.example.com/ \
	BUILD_URL=https://ci.example.com/job/infra/7/ BUILD_TAG=jenkins-infra-7 BUILD_NUMBER=7 \
	JOB_NAME=infra GIT_COMMIT=89abcdef
unset ORCHD_EXTENSIONS_PATH ORCHD_EXTENSIONS_PATH_ONLY || true
step() { sh "$WS/steps.$1" > "$WS/out.$1" 2>&1; }
rc=0; step 0 || rc=$?
[ "$rc" = 0 ] || { cat "$WS/out.0"; fail "Validate: exit $rc, want 0"; }
rc=0; step 1 || rc=$?
[ "$rc" = 2 ] || { cat "$WS/out.1"; fail "Plan: exit $rc, want 2 (changes: Approve and Apply run)"; }
rc=0; step 2 || rc=$?
[ "$rc" = 0 ] || { cat "$WS/out.2"; fail "Apply: exit $rc, want 0"; }
for f in plan.json plan-junit.xml report.json junit.xml report.html metrics.prom trace.json; do
	[ -s "orchd-reports/$f" ] || fail "Apply: orchd-reports/$f was not written"
done
ls .orchd/runs/*/logs/exec.deploy.log > /dev/null 2>&1 || fail "no logs where the post section archives them"
sh "$SRC/tests/formats/junit.sh" orchd-reports/junit.xml orchd-reports/plan-junit.xml > "$WS/junit.out" 2>&1 ||
	{ cat "$WS/junit.out"; fail "the JUnit files the junit step reads are not valid"; }
orchd history --state-dir .orchd pipeline.yaml exec.deploy | grep -q "build jenkins-infra-7" ||
	fail "orchd history does not name the build"
echo "ok   the Validate, Plan and Apply steps work; every archived report is there"

# 3. an abort during Apply: SIGTERM to the step's process group
cat > pipeline.yaml <<'YAML'
check:
  exec:
    - name: slow
      command: [sh, -c, 'echo started; sleep 60']
YAML
rm -rf orchd-reports/*
mkdir -p orchd-reports
setsid sh "$WS/steps.2" > "$WS/out.abort" 2>&1 &
pid=$!
i=0
until grep -q started .orchd/runs/*/logs/* 2>/dev/null || grep -q "started" "$WS/out.abort"; do
	i=$((i + 1))
	[ "$i" -lt 300 ] || { cat "$WS/out.abort"; kill -KILL "-$pid" 2>/dev/null; fail "the slow step never started"; }
	sleep 0.1
done
kill -TERM "-$pid"
rc=0; wait "$pid" || rc=$?
[ "$rc" != 0 ] || fail "Apply exited 0 after SIGTERM"
# the shell died at once; orchd stops its instance and writes its reports:
# wait for the whole group to be gone, as Jenkins waits for the step's
# processes (before its own SIGKILL, after a grace period)
i=0
while kill -0 "-$pid" 2>/dev/null; do
	i=$((i + 1))
	[ "$i" -lt 300 ] || { kill -KILL "-$pid" 2>/dev/null; fail "orchd still runs 30 s after SIGTERM"; }
	sleep 0.1
done
for f in report.json junit.xml report.html metrics.prom trace.json; do
	[ -s "orchd-reports/$f" ] || { cat "$WS/out.abort"; fail "after an abort: orchd-reports/$f was not written"; }
done
grep -q '"status":"cancelled"' orchd-reports/report.json || { cat orchd-reports/report.json; fail "after an abort: the instance is not cancelled in the report"; }
echo "ok   an abort (SIGTERM to the step) exits $rc and leaves every report"
