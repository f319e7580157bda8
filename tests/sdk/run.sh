#!/bin/sh
# tests/sdk/run.sh [BUILD]: the tests of the extension SDKs in
# protocol/sdk/ (Python: pytest; Go: go test; sh: its own runner), each
# against the orchd of BUILD (default build/) for its end-to-end runs.
# Prints one line per SDK and a closing "sdk: N passed, M failed"; exits 1
# when a test failed or an SDK's tests could not run.
#
# pytest and its dependencies come from PyPI into a venv of their own,
# pinned by the sha256 of each wheel (~/.cache/orchd/venv/pytest-9.2.0).
set -u
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
PYTHON=${PYTHON:-python3}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/orchd
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/orchd-sdk-XXXXXX")
trap 'rm -rf "$LOGS"' EXIT
export ORCHD="$BUILD/bin/orchd"
[ -x "$ORCHD" ] || { echo "sdk: $ORCHD is not built (make)" >&2; exit 2; }
passed=0 failed=0

die() { echo "sdk: $*" >&2; exit 2; }

# one SDK's verdict: NAME PASSED FAILED LOG
report() {
	passed=$((passed + $2))
	failed=$((failed + $3))
	echo "sdk: $1: $2 passed, $3 failed"
	if [ "$3" -gt 0 ]; then
		sed 's/^/    /' "$4" | tail -n 60
	fi
}

# --- Python: pytest in a pinned venv ----------------------------------------
venv=$CACHE/venv/pytest-9.2.0
if ! [ -x "$venv/bin/pytest" ]; then
	rm -rf "$venv.tmp"
	"$PYTHON" -m venv "$venv.tmp" || die "'$PYTHON -m venv' failed (Debian: python3-venv)"
	cat > "$venv.tmp/requirements.txt" <<'REQ'
pytest==9.2.0 --hash=sha256:07acdcf88ec174f907dc01af70bf52d49b014bbab03faeeade31c96b18c2e588
pluggy==1.7.0 --hash=sha256:7dd7b0d8832ba3cb632c306926ded123429211b83641b35dc5c41ad2d34f9bec
iniconfig==2.3.1 --hash=sha256:9121e2c1fdb355232495be3194c8dfe87ccc2d5dee45947b78e68f499790d7a7
packaging==26.4 --hash=sha256:81383611a09c1bc0b08b76e0fd5829d7c6824c65b27a6aee339da133f4233ea2
pygments==2.21.0 --hash=sha256:2363c69b61c4a97c838da3b130dcd6468f4848992b21a82f2a63ec34377137d9
REQ
	"$venv.tmp/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
		--only-binary :all: --require-hashes -r "$venv.tmp/requirements.txt" ||
		{ rm -rf "$venv.tmp"; die "pip could not install pytest 9.2.0"; }
	mkdir -p "$(dirname "$venv")"
	rm -rf "$venv"
	mv "$venv.tmp" "$venv"
fi
# no cache of pytest's in the source tree
(cd "$SRC/protocol/sdk/python" &&
	"$venv/bin/python" -m pytest -q -p no:cacheprovider tests) > "$LOGS/python" 2>&1
rc=$?
# the summary line: "248 passed, 1 skipped in 17.71s"
count() { grep -o "[0-9][0-9]* $1" "$LOGS/python" | tail -n 1 | cut -d' ' -f1; }
p=$(count passed)
f=$(count failed)
s=$(count skipped)
[ -n "${s:-}" ] && [ "$s" -gt 0 ] && { echo "sdk: python: $s skipped:"; grep -i skip "$LOGS/python" | head; }
[ $rc -eq 0 ] || [ "${f:-0}" -gt 0 ] || f=1
report python "${p:-0}" "${f:-0}" "$LOGS/python"

# --- Go: go test, standard library only ------------------------------------
if command -v go >/dev/null 2>&1; then
	(cd "$SRC/protocol/sdk/go" && go test -json ./... > "$LOGS/go.json" 2> "$LOGS/go")
	rc=$?
	p=$(grep -c '"Action":"pass","Package":"[^"]*","Test":' "$LOGS/go.json")
	f=$(grep -c '"Action":"fail","Package":"[^"]*","Test":' "$LOGS/go.json")
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		grep -h '"Output"' "$LOGS/go.json" | sed 's/.*"Output":"\(.*\)"}$/\1/' >> "$LOGS/go"
	fi
	report go "$p" "$f" "$LOGS/go"
else
	echo "sdk: go: not installed (make tools needs it too)" >&2
	failed=$((failed + 1))
fi

# --- sh: its own runner, under dash and bash --------------------------------
if [ -f "$SRC/protocol/sdk/sh/tests/run.sh" ]; then
	sh "$SRC/protocol/sdk/sh/tests/run.sh" > "$LOGS/sh" 2>&1
	rc=$?
	p=$(grep -c '^ok\b\|^PASS\b\|^pass\b' "$LOGS/sh")
	f=$(grep -c '^not ok\b\|^FAIL\b\|^fail\b' "$LOGS/sh")
	[ $rc -eq 0 ] || [ "$f" -gt 0 ] || f=1
	report sh "$p" "$f" "$LOGS/sh"
fi

echo "sdk: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
