#!/bin/sh
# tests/run.sh: the tests of the sh SDK.  POSIX sh; the extensions it
# starts run under the same shell as the test, so run it with each:
#
#   dash protocol/sdk/sh/tests/run.sh && bash protocol/sdk/sh/tests/run.sh
#
#   run.sh [vectors] [ext] [sdk] [orchd]     (default: all four parts)
#
#   vectors  every case of protocol/vectors/messages.jsonl through vectors.sh
#   ext      the example extension (examples/orchd-ext-shgreet) as a real
#            subprocess over real pipes: handshake, describe, validate, plan,
#            apply, idempotence, destroy, cancel, signals, bad input, EOF,
#            sessions, a config value that must round-trip exactly
#   sdk      the SDK's other features, with tests/orchd-ext-sdkcheck
#   orchd    end to end with build/bin/orchd (skipped when it is absent):
#            run, outputs, plan, destroy, validation errors, a timeout
#
# One line per check (ok / FAIL / skip), then the counts; exit status 1 when
# a check failed.  Needs jq and mkfifo.
set -u

TESTS=$(cd "$(dirname "$0")" && pwd)
SDK=$(dirname "$TESTS")
ROOT=$(cd "$SDK/../../.." && pwd)
VECTORS=${ORCHD_VECTORS:-$ROOT/protocol/vectors/messages.jsonl}
GREET=$SDK/examples/orchd-ext-shgreet
SDKCHECK=$TESTS/orchd-ext-sdkcheck
ORCHD=${ORCHD_BIN:-$ROOT/build/bin/orchd}
# the shell running this test, which also runs the extensions
TSH=${ORCHD_TEST_SHELL:-$(ps -o comm= -p $$ 2>/dev/null)}
case $TSH in
*bash*) TSH=bash ;;
*dash*) TSH=dash ;;
'' | *) [ -n "${BASH_VERSION:-}" ] && TSH=bash || TSH=${TSH:-sh} ;;
esac
command -v "$TSH" >/dev/null 2>&1 || TSH=sh

. "$SDK/orchd.sh" # for orchd_verdict

T=$(mktemp -d "${TMPDIR:-/tmp}/orchd-sh-test.XXXXXX") || exit 1
cleanup() {
	[ -n "${X:-}" ] && [ -s "$X/pid" ] && kill -s KILL "$(cat "$X/pid")" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PASS=0 FAIL=0 SKIP=0
ok() {
	PASS=$((PASS + 1))
	printf 'ok   %s\n' "$1"
}
not_ok() {
	FAIL=$((FAIL + 1))
	printf 'FAIL %s\n' "$1"
	shift
	for _l in "$@"; do printf '     %s\n' "$_l"; done
}
skip() {
	SKIP=$((SKIP + 1))
	printf 'skip %s\n' "$1"
}
# check NAME COMMAND...: a check that passes when COMMAND succeeds
check() {
	_cn=$1
	shift
	if "$@" >"$T/check.out" 2>&1; then
		ok "$_cn"
	else
		not_ok "$_cn" "command: $*" "output: $(tail -c 600 "$T/check.out")"
	fi
}

ARGS=" $* "
[ $# -eq 0 ] && ARGS=" vectors ext sdk orchd "
part() { case $ARGS in *" $1 "*) return 0 ;; esac; return 1; }

printf '# shell: %s; jq: %s; orchd: %s\n' "$TSH" "$(jq --version 2>&1)" \
	"$([ -x "$ORCHD" ] && "$ORCHD" version 2>/dev/null || echo absent)"

# --- (a) the conformance vectors -------------------------------------------------

if part vectors; then
	n=0
	# the cases, then per case: dir, expect and note as shell words
	grep -v -e '^#' -e '^[[:space:]]*$' "$VECTORS" >"$T/cases"
	jq -r '@sh "dir=\(.dir) expect=\(.expect) note=\(.note // "")"' "$T/cases" >"$T/words"
	while IFS= read -r c <&4 && IFS= read -r words <&5; do
		n=$((n + 1))
		eval "$words"
		"$TSH" "$SDK/vectors.sh" --case "$c" >"$T/raw"
		got=$("$TSH" "$SDK/vectors.sh" "$dir" "$T/raw")
		name="vectors $n: $dir $expect${note:+ ($note)}"
		if [ "$got" = "$expect" ]; then ok "$name"; else not_ok "$name" "got: $got"; fi
	done 4<"$T/cases" 5<"$T/words"
	check "vectors: the file has cases ($n)" [ "$n" -gt 0 ]
fi

# --- driving an extension over pipes -------------------------------------------------

X= # the directory of the current extension run: in (FIFO), out, err, pid, rc, wd
# a background job of a non-interactive shell starts with SIGINT ignored,
# which a shell cannot undo: give the extension the default, as orchd does
DEFSIG=
env --default-signal=INT true 2>/dev/null && DEFSIG=--default-signal=INT

HELLO='{"type":"hello","protocol":{"min":1,"max":1},"orchd_version":"0.1.0"}'

# ext_start NAME EXECUTABLE [VAR=VALUE...]: start it, stdin a FIFO kept open
# on fd 3
ext_start() {
	X=$T/$1
	_exe=$2
	shift 2
	rm -rf "$X"
	mkdir -p "$X/wd"
	mkfifo "$X/in"
	(
		cd "$X/wd" || exit 1
		env $DEFSIG "$@" sh -c 'echo $$ >"$0/pid"; exec "$1" "$2"' "$X" "$TSH" "$_exe" \
			<"$X/in" >"$X/out" 2>"$X/err"
		echo $? >"$X/rc.tmp" && mv "$X/rc.tmp" "$X/rc"
	) 3>&- &
	exec 3>"$X/in"
}
ext_send() { printf '%s\n' "$1" >&3; }
ext_close() { exec 3>&-; }
# ext_action ACTION CONFIG [STATE [OUTPUTS]]: send an action message
ext_action() {
	ext_send "$(jq -cn --arg a "$1" --argjson c "$2" --argjson s "${3:-null}" \
		--argjson o "${4:-{\}}" --arg w "$X/wd" \
		'{type: "action", action: $a, instance: "t", stack: "dev-sh-t", config: $c,
		  state: $s, outputs: $o, workdir: $w}')"
}
# msgs: the messages written so far, as one JSON array (a line that is not
# JSON becomes {"_raw": LINE})
msgs() { jq -ncR '[inputs | fromjson? // {_raw: .}]' "$X/out"; }
# holds JQ-COND [JQ-OPTIONS...]: jq COND holds on msgs
holds() {
	_c=$1
	shift
	jq -neR "$@" "[inputs | fromjson? // {_raw: .}] | $_c" "$X/out" >/dev/null 2>&1
}
# ext_wait COND [SECONDS]: wait until jq COND holds on msgs
ext_wait() {
	_w=0
	while [ $_w -lt $((${2:-20} * 10)) ]; do
		holds "$1" && return 0
		if [ -e "$X/rc" ]; then
			holds "$1"
			return
		fi
		sleep 0.1
		_w=$((_w + 1))
	done
	return 1
}
# ext_exit [SECONDS]: wait for the exit; its status in RC ("timeout": killed)
ext_exit() {
	_w=0
	while [ ! -e "$X/rc" ] && [ $_w -lt $((${1:-20} * 10)) ]; do
		sleep 0.1
		_w=$((_w + 1))
	done
	if [ -e "$X/rc" ]; then
		RC=$(cat "$X/rc")
	else
		kill -s KILL "$(cat "$X/pid")" 2>/dev/null
		RC=timeout
	fi
	wait 2>/dev/null
}
# ext_run NAME EXE ACTION CONFIG [STATE [OUTPUTS]]: one whole exchange, as
# orchd does it: hello, action, wait for the result, close stdin, exit
ext_run() {
	_n=$1 _e=$2
	shift 2
	ext_start "$_n" "$_e"
	ext_send "$HELLO"
	ext_wait 'any(.[]; .type == "hello")'
	ext_action "$@"
	ext_wait 'any(.[]; .type == "result")'
	ext_close
	ext_exit
}
# expect NAME JQ-COND: a check on msgs
expect() {
	if holds "$2"; then
		ok "$1"
	else
		not_ok "$1" "condition: $2" "stdout: $(head -c 1500 "$X/out")" "stderr: $(tail -c 600 "$X/err")"
	fi
}
expect_rc() {
	if [ "$RC" = "$2" ]; then ok "$1"; else not_ok "$1" "exit status $RC, expected $2" "stderr: $(tail -c 600 "$X/err")"; fi
}
expect_err() { # NAME TEXT: stderr holds TEXT
	if grep -F -q -- "$2" "$X/err"; then ok "$1"; else not_ok "$1" "stderr lacks: $2" "stderr: $(tail -c 600 "$X/err")"; fi
}
# expect_framing NAME [RESULTS]: every stdout line is a valid message (or
# empty), the result is last and there is at most one (or RESULTS)
expect_framing() {
	_bad=
	_i=0
	while IFS= read -r _line || [ -n "$_line" ]; do
		_i=$((_i + 1))
		printf '%s' "$_line" >"$T/line"
		_v=$(orchd_verdict from_ext "$T/line" "$T/line")
		case $_v in
		valid:* | empty) ;;
		*) _bad="$_bad line $_i: $_v;" ;;
		esac
	done <"$X/out"
	holds "[.[] | select(.type == \"result\")] | length <= ${2:-1}" ||
		_bad="$_bad more than ${2:-1} result(s);"
	holds 'map(select(.type == "result")) == [] or .[-1].type == "result"' ||
		_bad="$_bad the result is not last;"
	if [ -z "$_bad" ]; then ok "$1: stdout holds protocol lines only"; else not_ok "$1: stdout holds protocol lines only" "$_bad"; fi
}
# leftover PATTERN: no process runs the command line PATTERN
no_leftover() {
	sleep 0.3
	! ps -A -o args= 2>/dev/null | grep -q -x -- "$1"
}
now() { date +%s; }

# --- (b) the example extension --------------------------------------------------------

CFG='{"who": "Ada"}'
if part ext; then
	# handshake
	ext_start hs "$GREET"
	ext_send "$HELLO"
	ext_wait 'any(.[]; .type == "hello")'
	expect "handshake: the hello" '.[0] | .type == "hello" and .protocol == 1 and .name == "shgreet"
		and .version == "0.1.0" and .min_orchd_version == "0.1.0"
		and .actions == ["describe", "validate", "plan", "apply", "destroy"]
		and (.features | index("session") != null)'
	ext_close
	ext_exit
	expect_rc "handshake: EOF before the action exits 1" 1
	expect_err "handshake: EOF before the action is said on stderr" "end of input before the action"
	expect "handshake: nothing but the hello" 'length == 1'

	ext_start hs13 "$GREET"
	ext_send '{"type":"hello","protocol":{"min":1,"max":3},"orchd_version":"0.9.0"}'
	ext_wait 'any(.[]; .type == "hello")'
	expect "handshake: orchd 1..3, the extension chooses 1" '.[0].protocol == 1'
	ext_close
	ext_exit

	ext_start hs23 "$GREET"
	ext_send '{"type":"hello","protocol":{"min":2,"max":3},"orchd_version":"9.0.0"}'
	ext_exit
	expect_rc "handshake: orchd 2..3 is refused with exit status 1" 1
	expect "handshake: orchd 2..3, an error message" '. == [{"type": "error",
		"message": "extension shgreet speaks protocol 1..1, orchd offers 2..3", "retryable": false}]'
	expect_err "handshake: orchd 2..3, said on stderr" "shgreet: extension shgreet speaks protocol 1..1, orchd offers 2..3"
	ext_close

	ext_start hsbad "$GREET"
	ext_send '{"type":"hello","protocol":{"min":0,"max":1},"orchd_version":"0.1.0"}'
	ext_exit
	expect_rc "handshake: an invalid hello exits 1" 1
	expect "handshake: an invalid hello gets no answer" 'length == 0'
	expect_err "handshake: an invalid hello, the protocol error on stderr" \
		"protocol error: hello: field 'protocol' must satisfy 1 <= min <= max"
	ext_close

	# describe
	ext_start describe "$GREET"
	ext_send "$HELLO"
	ext_send '{"type":"action","action":"describe"}'
	ext_wait 'any(.[]; .type == "result")'
	expect "describe: the description" '.[-1] | .status == "success" and .describe.type == "shgreet"
		and .describe.version == "0.1.0" and .describe.config.required == ["who"]
		and (.describe.config.properties | keys) == ["greeting", "pause", "who"]
		and (.describe.description | test("sh SDK"))'
	ext_close
	ext_exit
	expect_rc "describe: exit status 0" 0

	# validate
	ext_run validate-ok "$GREET" validate '{"who": "Ada", "greeting": "hi", "pause": 0}'
	expect "validate: a valid config" '.[-1] == {"type": "result", "status": "success", "summary": "configuration is valid"}'
	expect_rc "validate: exit status 0" 0
	expect_framing "validate"

	ext_run validate-bad "$GREET" validate '{"greting": "hi", "pause": "soon", "colour": 1}'
	expect "validate: failure with every error by path" '.[-1] | .status == "failure" and .errors == [
		{"path": "greting", "message": "unknown key '\''greting'\'' (did you mean '\''greeting'\''?)"},
		{"path": "colour", "message": "unknown key '\''colour'\''"},
		{"path": "who", "message": "is required"},
		{"path": "pause", "message": "must be an integer"}]'
	expect "validate: the summary names the first error" '.[-1].summary ==
		"invalid configuration: unknown key '\''greting'\'' (did you mean '\''greeting'\''?) (and 3 more)"'
	expect "validate: each error logged at level error" '[.[] | select(.type == "log" and .level == "error") | .message] == [
		"unknown key '\''greting'\'' (did you mean '\''greeting'\''?)", "unknown key '\''colour'\''",
		"who: is required", "pause: must be an integer"]'
	expect_rc "validate: exit status 0 after a failure result" 0
	expect_framing "validate errors"

	ext_run validate-ref "$GREET" validate '{"who": "Ada", "pause": "${{ exec.x.outputs.n }}"}'
	expect "validate: an output not known yet is accepted (§7.2)" '.[-1].status == "success"'

	ext_run validate-type "$GREET" validate '{"who": ["Ada"], "greeting": 5}'
	expect "validate: wrong types" '.[-1].errors == [{"path": "who", "message": "must be a non-empty string"},
		{"path": "greeting", "message": "must be a string"}]'

	# plan, apply, apply again, destroy
	ext_run plan1 "$GREET" plan "$CFG"
	expect "plan: first time, would change" '.[-1] == {"type": "result", "status": "success", "changed": true, "summary": "would greet Ada"}'
	expect "plan: no output, no state" 'all(.[]; .type != "output" and .type != "state")'

	ext_run apply1 "$GREET" apply "$CFG"
	expect "apply: outputs" '[.[] | select(.type == "output")] == [
		{"type": "output", "key": "message", "value": "hello, Ada"}, {"type": "output", "key": "runs", "value": 1}]'
	expect "apply: state" '[.[] | select(.type == "state")] == [{"type": "state", "state": {"who": "Ada", "greeting": "hello", "runs": 1}}]'
	expect "apply: changed" '.[-1] == {"type": "result", "status": "success", "changed": true, "summary": "greeted Ada"}'
	expect "apply: progress and log" 'any(.[]; .type == "progress" and .percent == 50) and any(.[]; .type == "log" and .message == "hello, Ada")'
	expect_rc "apply: exit status 0" 0
	expect_framing "apply"
	check "apply: greeting.txt in the workdir" grep -q -x 'hello, Ada' "$X/wd/greeting.txt"
	STATE=$(msgs | jq -c '[.[] | select(.type == "state")][-1].state')
	OUTPUTS=$(msgs | jq -c '[.[] | select(.type == "output") | {(.key): .value}] | add')

	ext_run plan2 "$GREET" plan "$CFG" "$STATE" "$OUTPUTS"
	expect "plan: after apply, no change" '.[-1] == {"type": "result", "status": "success", "changed": false, "summary": "no change"}'
	ext_run plan3 "$GREET" plan '{"who": "Ada", "greeting": "hi"}' "$STATE" "$OUTPUTS"
	expect "plan: another greeting would change" '.[-1].changed == true'

	ext_run apply2 "$GREET" apply "$CFG" "$STATE" "$OUTPUTS"
	expect "apply again: idempotent, changed false" '.[-1] == {"type": "result", "status": "success", "changed": false, "summary": "greeted Ada"}'
	expect "apply again: runs counts from the previous state" 'any(.[]; .type == "output" and .key == "runs" and .value == 2)
		and any(.[]; .type == "state" and .state.runs == 2)'

	ext_run destroy1 "$GREET" destroy "$CFG" "$STATE" "$OUTPUTS"
	expect "destroy: state null, changed" '.[-2:] == [{"type": "state", "state": null},
		{"type": "result", "status": "success", "changed": true, "summary": "forgot Ada"}]'
	ext_run destroy2 "$GREET" destroy "$CFG" null '{}'
	expect "destroy: nothing there, idempotent" '.[-2:] == [{"type": "state", "state": null},
		{"type": "result", "status": "success", "changed": false, "summary": "nothing to destroy"}]'

	# a value with quotes, backslashes, newlines, control characters and
	# non-ASCII characters, and a trailing newline, round-trips exactly
	WHO='"Ada \"the\" \\ Lovelace\nline 2\ttab \u0001 \u00e9 \u4e2d \ud83d\ude00 </script> $HOME `id` $(id) \n"'
	GR='"¡hola"'
	ext_run roundtrip "$GREET" apply "{\"who\": $WHO, \"greeting\": $GR}"
	if holds 'any(.[]; .type == "output" and .key == "message" and .value == "\($gr), \($who)")
		 and any(.[]; .type == "state" and .state.who == $who and .state.greeting == $gr)' \
		--argjson who "$WHO" --argjson gr "$GR"; then
		ok "round trip: output and state hold the exact value"
	else
		not_ok "round trip: output and state hold the exact value" "stdout: $(cat "$X/out")"
	fi
	expect_framing "round trip"

	# cancellation: the cancel message (§9), within the grace
	ext_start cancel "$GREET"
	ext_send "$HELLO"
	ext_wait 'any(.[]; .type == "hello")'
	ext_action apply '{"who": "Ada", "pause": 37}'
	sleep 1
	t0=$(now)
	ext_send '{"type":"cancel","reason":"timeout"}'
	ext_wait 'any(.[]; .type == "result")' 9
	t1=$(now)
	expect "cancel message: failure result cancelled" '.[-1] == {"type": "result", "status": "failure", "changed": true, "summary": "cancelled"}'
	expect "cancel message: the extension's cancel hook ran" 'any(.[]; .type == "log" and .message == "cancelled before greeting anyone")'
	expect "cancel message: the reason is logged" 'any(.[]; .type == "log" and .level == "warning" and (.message | test("cancelled by orchd \\(timeout\\)")))'
	check "cancel message: result within 3 s ($((t1 - t0)) s)" [ $((t1 - t0)) -le 3 ]
	ext_close
	ext_exit
	expect_rc "cancel message: exit status 0" 0
	expect_framing "cancel message"
	check "cancel message: the command it ran is gone" no_leftover "sleep 37"

	for sig in TERM INT; do
		if [ $sig = INT ] && [ -z "$DEFSIG" ]; then
			skip "SIGINT: this env cannot start a background job with SIGINT not ignored (env --default-signal)"
			continue
		fi
		ext_start "sig$sig" "$GREET"
		ext_send "$HELLO"
		ext_wait 'any(.[]; .type == "hello")'
		ext_action apply '{"who": "Ada", "pause": 38}'
		sleep 1
		t0=$(now)
		kill -s "$sig" "$(cat "$X/pid")"
		ext_wait 'any(.[]; .type == "result")' 9
		t1=$(now)
		expect "SIG$sig: failure result cancelled" '.[-1] | .status == "failure" and .summary == "cancelled"'
		check "SIG$sig: result within 3 s ($((t1 - t0)) s)" [ $((t1 - t0)) -le 3 ]
		ext_close
		ext_exit
		expect_rc "SIG$sig: exit status 0" 0
		check "SIG$sig: the command it ran is gone" no_leftover "sleep 38"
	done

	# end of input during the action: orchd is gone, a cancel (§9.4)
	ext_start eof "$GREET"
	ext_send "$HELLO"
	ext_wait 'any(.[]; .type == "hello")'
	ext_action apply '{"who": "Ada", "pause": 36}'
	sleep 1
	ext_close
	ext_exit 9
	expect "closed stdin during the action: cancelled" '.[-1] | .status == "failure" and .summary == "cancelled"'
	expect_rc "closed stdin during the action: exit status 0" 0

	ext_start eof0 "$GREET"
	ext_close
	ext_exit
	expect_rc "closed stdin before hello: exit status 1" 1
	expect "closed stdin before hello: nothing on stdout" 'length == 0'

	# garbage on stdin
	ext_start garbage1 "$GREET"
	ext_send 'this is not JSON {'
	ext_exit
	expect_rc "garbage instead of hello: exit status 1" 1
	expect "garbage instead of hello: nothing on stdout" 'length == 0'
	expect_err "garbage instead of hello: said on stderr" "protocol error: expected hello"
	ext_close

	ext_start garbage2 "$GREET"
	ext_send "$HELLO"
	ext_send '[1, 2]'
	ext_exit
	expect_rc "garbage instead of the action: exit status 1" 1
	expect "garbage instead of the action: only the hello" 'length == 1 and .[0].type == "hello"'
	ext_close

	ext_start garbage3 "$GREET"
	ext_send "$HELLO"
	ext_send '{"type":"action","action":"apply"}'
	ext_exit
	expect_rc "an invalid action message: exit status 1" 1
	expect_err "an invalid action message: the protocol error" "protocol error: action: missing required field 'instance'"
	ext_close

	ext_start garbage4 "$GREET"
	ext_send "$HELLO"
	ext_wait 'any(.[]; .type == "hello")'
	ext_action apply '{"who": "Ada", "pause": 35}'
	sleep 1
	ext_send 'garbage during the action'
	ext_wait 'any(.[]; .type == "result")' 9
	ext_close
	ext_exit
	expect "garbage during the action: failure result" '.[-1] | .status == "failure" and (.summary | test("protocol error"))'
	expect_rc "garbage during the action: exit status 1" 1
	expect_framing "garbage during the action"

	# orchd stops reading our stdout (EPIPE): stop, exit 1 (§9.5)
	X=$T/epipe
	rm -rf "$X"
	mkdir -p "$X/wd"
	act=$(jq -cn --arg w "$X/wd" '{type: "action", action: "apply", instance: "t", stack: "s",
		config: {who: "Ada", pause: 1}, state: null, outputs: {}, workdir: $w}')
	(
		cd "$X/wd" && { printf '%s\n' "$HELLO" "$act"; sleep 6; } |
			{ env $DEFSIG "$TSH" "$GREET" 2>"$X/err"; echo $? >"$X/rc"; } | head -n 1 >"$X/out"
	) &
	t0=$(now)
	_w=0
	while [ ! -e "$X/rc" ] && [ $_w -lt 100 ]; do
		sleep 0.1
		_w=$((_w + 1))
	done
	t1=$(now)
	ext_exit 10
	expect_rc "closed stdout (EPIPE): exit status 1" 1
	expect_err "closed stdout (EPIPE): said on stderr" "orchd stopped reading"
	check "closed stdout (EPIPE): it stopped at its next write ($((t1 - t0)) s)" [ $((t1 - t0)) -le 5 ]

	# empty and blank lines are ignored (§4)
	ext_start blank "$GREET"
	ext_send ''
	ext_send "$(printf ' \t \r')"
	ext_send "$HELLO"
	ext_send '   '
	ext_action validate "$CFG"
	ext_wait 'any(.[]; .type == "result")'
	ext_close
	ext_exit
	expect "blank lines are ignored" 'length == 2 and .[-1].status == "success"'

	# started by hand with arguments: usage, exit 2 (§3)
	ext_start usage "$GREET"
	ext_close
	(cd "$X/wd" && "$TSH" "$GREET" --help >"$X/out2" 2>"$X/err2" </dev/null)
	RC=$?
	wait 2>/dev/null
	expect_rc "arguments: exit status 2" 2
	check "arguments: usage on stderr, nothing on stdout" sh -c '[ ! -s "$1" ] && grep -q "orchd extension" "$2"' sh "$X/out2" "$X/err2"

	# a session (§7.6): validate, then apply in the same process
	ext_start session "$GREET"
	ext_send "$HELLO"
	ext_action validate "$CFG"
	ext_wait 'any(.[]; .type == "result")'
	ext_action apply "$CFG"
	ext_wait '[.[] | select(.type == "result")] | length == 2'
	expect "session: two actions, two results" '[.[] | select(.type == "result") | .status] == ["success", "success"]
		and any(.[]; .type == "output" and .key == "message")'
	ext_close
	ext_exit
	expect_rc "session: exit status 0 at the end of input" 0
	expect_framing "session" 2

	ext_start session-cancel "$GREET"
	ext_send "$HELLO"
	ext_action validate "$CFG"
	ext_wait 'any(.[]; .type == "result")'
	ext_send '{"type":"cancel","reason":"interrupted"}'
	ext_exit
	expect_rc "session: a cancel between actions ends it, exit status 0" 0
	ext_close
fi

# --- the other SDK features (tests/orchd-ext-sdkcheck) ------------------------------------

if part sdk; then
	# the author's script with set -eu and IFS=: (SDKCHECK_STRICT)
	for m in types big secret errexit; do
		ext_start "strict-$m" "$SDKCHECK" SDKCHECK_STRICT=1
		ext_send "$HELLO"
		ext_action apply "{\"mode\": \"$m\", \"value\": {\"s\": \"a\"}}"
		ext_wait 'any(.[]; .type == "result")'
		ext_close
		ext_exit
		case $m in
		errexit) expect "set -eu, IFS=: ($m): the failure" '.[-1] | .status == "failure" and .summary == "apply failed (exit status 1)"' ;;
		*) expect "set -eu, IFS=: ($m): success" '.[-1].status == "success"' ;;
		esac
		expect_rc "set -eu, IFS=: ($m): exit status 0" 0
	done
	expect_framing "set -eu, IFS=:"
	ext_start strict-big "$SDKCHECK" SDKCHECK_STRICT=1
	ext_send "$HELLO"
	ext_action apply '{"mode": "big"}'
	ext_wait 'any(.[]; .type == "result")'
	ext_close
	ext_exit
	expect "set -eu, IFS=: a large output still goes in a file" 'any(.[]; .type == "output" and .key == "big" and has("file"))'

	ext_run stray "$SDKCHECK" apply '{"mode": "stray"}'
	expect_framing "stray stdout"
	expect "stray stdout: the action still succeeds" '.[-1].status == "success" and length == 3'
	expect_err "stray stdout: it went to stderr" "a child writes on stdout"

	ext_run types "$SDKCHECK" apply '{"mode": "types", "value": {"s": "a", "n": 1, "b": true, "o": {"k": null}, "a": [], "z": null}}' \
		'{"prev": 1}' '{"odd \"key\"": "v", "n": 2}'
	expect "orchd_cfg_type" '[.[] | select(.type == "output" and (.key | startswith("type."))) | .value]
		== ["string", "number", "boolean", "object", "array", "null", "missing", "null", "missing"]'
	expect "orchd_cfg_keys, default, instance" 'any(.[]; .key == "keys" and .value == "s,n,b,o,a,z,")
		and any(.[]; .key == "default" and .value == "fallback") and any(.[]; .key == "instance" and .value == "t")'
	expect "previous outputs" 'any(.[]; .key == "prev" and .value == {"odd \"key\"": "v", "n": 2})
		and any(.[]; .key == "prevkey" and .value == "v")'

	ext_run secret "$SDKCHECK" apply '{"mode": "secret"}'
	expect "mask, secret output, secret state" '.[1:4] == [{"type": "mask", "value": "tok-123"},
		{"type": "output", "key": "token", "secret": true, "value": "tok-123"},
		{"type": "state", "secret": true, "state": {"password": "pw"}}]'

	ext_run big "$SDKCHECK" apply '{"mode": "big"}'
	expect_framing "values larger than a line"
	expect "a large output goes in a file of the workdir (§4.1)" 'any(.[]; .type == "output" and .key == "big" and (.file | test("^\\.orchd-sdk/")) and (has("value") | not))'
	expect "a large state goes in a file" 'any(.[]; .type == "state" and has("file") and (has("state") | not))'
	expect "a large log message is cut" 'any(.[]; .type == "log" and (.message | endswith("[truncated]")))'
	bigfile=$(msgs | jq -r '.[] | select(.type == "output" and .key == "big") | .file')
	check "the file holds the value" sh -c 'jq -e "length == 1100000" "$1" >/dev/null' sh "$X/wd/$bigfile"

	ext_run progress "$SDKCHECK" apply '{"mode": "progress"}'
	expect "progress: percent kept, a bad one left out" '[.[] | select(.type == "progress")] == [
		{"type": "progress", "message": "half", "percent": 50}, {"type": "progress", "message": "bad percent"},
		{"type": "progress", "message": "no percent"}]'
	expect "an unknown log level and a value that is not JSON are refused" 'any(.[]; .key == "badlevel") and any(.[]; .key == "notjson" and .value == "refused")'

	for m in "fail:it went wrong" "retry:service unavailable" "status:apply failed (status 3)" \
		"exit:apply failed (exit status 4)" "errexit:apply failed (exit status 1)"; do
		ext_run "m-${m%%:*}" "$SDKCHECK" apply "{\"mode\": \"${m%%:*}\"}"
		expect "failure (${m%%:*}): $m" ".[-1] | .status == \"failure\" and .summary == \"${m#*:}\""
		expect_rc "failure (${m%%:*}): exit status 0" 0
	done
	expect "errexit: nothing after the failing command" 'all(.[]; .type != "output")'
	ext_run m-retry2 "$SDKCHECK" apply '{"mode": "retry"}'
	expect "orchd_fail --retryable sends a retryable error" 'any(.[]; .type == "error" and .retryable == true)'

	ext_run notvalid "$SDKCHECK" apply '{"value": 1}'
	expect "apply validates first: invalid config fails without running apply" '.[-1] | .status == "failure"
		and .errors == [{"path": "mode", "message": "is required"}]'

	ext_start hello2 "$SDKCHECK"
	ext_send "$HELLO"
	ext_wait 'any(.[]; .type == "hello")'
	expect "hello lists only the actions defined" '.[0].actions == ["describe", "validate", "apply"]'
	ext_action plan '{"mode": "x"}'
	ext_wait 'any(.[]; .type == "result")'
	expect "an action not implemented fails" '.[-1] == {"type": "result", "status": "failure",
		"summary": "extension sdkcheck 0.0.1 does not support action '\''plan'\''"}'
	ext_close
	ext_exit

	# no session: the process exits after its result without waiting for EOF
	ext_start nosession "$SDKCHECK" SDKCHECK_FEATURES=
	ext_send "$HELLO"
	ext_wait 'any(.[]; .type == "hello")'
	expect "features can be turned off" '.[0] | has("features") | not'
	ext_action apply '{"mode": "fail"}'
	ext_exit 10
	expect_rc "without session: exit 0 right after the result" 0
	ext_close

	# values in files (§4.1, feature files)
	ext_start files "$SDKCHECK"
	printf '{"mode": "types", "value": {"s": "in a file"}}' >"$X/wd/c.json"
	printf '{"prev": 1}' >"$X/wd/s.json"
	printf '{"odd \\"key\\"": "from a file"}' >"$X/wd/o.json"
	ext_send "$HELLO"
	ext_send "$(jq -cn --arg w "$X/wd" '{type: "action", action: "apply", instance: "t", stack: "s", workdir: $w,
		config_file: "\($w)/c.json", state_file: "\($w)/s.json", outputs_file: "\($w)/o.json"}')"
	ext_wait 'any(.[]; .type == "result")'
	expect "config, state and outputs in files" '.[-1].status == "success" and any(.[]; .key == "type.value.s" and .value == "string")
		and any(.[]; .key == "prevkey" and .value == "from a file")'
	ext_close
	ext_exit

	# a request and its response (§6.3)
	for okv in true false; do
		ext_start "fetch-$okv" "$SDKCHECK"
		ext_send "$HELLO"
		ext_action apply '{"mode": "fetch"}'
		ext_wait 'any(.[]; .type == "request")'
		expect "fetch ($okv): the request" 'any(.[]; . == {"type": "request", "id": 0, "op": "fetch",
			"source": {"git": "https://example.invalid/r.git", "ref": "main"}})'
		if [ $okv = true ]; then
			ext_send '{"type":"response","id":0,"ok":true,"result":{"type":"git","path":"r","commit":"0123456789abcdef0123456789abcdef01234567"}}'
			ext_wait 'any(.[]; .type == "result")'
			expect "fetch: the response's result" 'any(.[]; .key == "fetched" and .value.path == "r")'
		else
			ext_send '{"type":"response","id":0,"ok":false,"error":"source not allowed: no"}'
			ext_wait 'any(.[]; .type == "result")'
			expect "fetch: the response's error" 'any(.[]; .key == "fetch_error" and .value == "source not allowed: no")'
		fi
		ext_close
		ext_exit
	done

	# a command that ignores SIGTERM is killed after ORCHD_CANCEL_WAIT
	ext_start ignore "$SDKCHECK" SDKCHECK_CANCEL_WAIT=1
	ext_send "$HELLO"
	ext_action apply '{"mode": "ignore-term"}'
	sleep 1.5
	t0=$(now)
	ext_send '{"type":"cancel","reason":"interrupted"}'
	ext_wait 'any(.[]; .type == "result")' 9
	t1=$(now)
	expect "cancel: the state of the cancel hook, then the result" '(map(.type) | index("state")) < (map(.type) | index("result"))
		and any(.[]; .type == "state" and .state == {"half": "done"}) and .[-1].summary == "cancelled"'
	check "cancel: a command ignoring SIGTERM does not hold it ($((t1 - t0)) s)" [ $((t1 - t0)) -le 4 ]
	check "cancel: the command ignoring SIGTERM is killed" no_leftover "sleep 41"
	ext_close
	ext_exit
	expect_rc "cancel: exit status 0" 0
fi

# --- (c) end to end with orchd ---------------------------------------------------------------

if part orchd; then
	if [ ! -x "$ORCHD" ]; then
		skip "orchd: $ORCHD is absent (make at the top level builds it)"
	else
		# the extension directory, laid out as installed: the example and
		# orchd.sh beside it (under isolation strict the extension sees its
		# own directory, not the source tree), run by the shell of this test
		E=$T/ext
		mkdir -p "$E"
		cp "$GREET" "$E/shgreet.sh"
		cp "$SDK/orchd.sh" "$E/orchd.sh"
		printf '#!/bin/sh\nexec %s "${0%%/*}/shgreet.sh" "$@"\n' "$TSH" >"$E/orchd-ext-shgreet"
		chmod +x "$E/orchd-ext-shgreet"
		cp "$SDK/examples/orchd-ext-shgreet.manifest.json" "$E/"
		P=$SDK/examples/pipeline.yaml
		S=$T/state
		# (the example pipeline also uses exec, an extension of the build tree)
		o() { "$ORCHD" --extensions-dir "$E" "$@"; }

		o run "$P" --state-dir "$S" --report "$T/r1.json" >"$T/run1" 2>&1
		RC=$?
		check "orchd run: exit status 0 ($RC)" [ "$RC" = 0 ]
		check "orchd run: the exec step read the output" grep -q 'shgreet said: hi, Bob (run 1)' "$T/run1"
		o outputs "$P" --state-dir "$S" --json >"$T/out1" 2>&1
		check "orchd outputs: message and runs" jq -e '.["shgreet.bob"] == {"message": "hi, Bob", "runs": 1}' "$T/out1"
		check "orchd run: the instance changed" jq -e '.instances[] | select(.id == "shgreet.bob") | .changed == true and .status == "success"' "$T/r1.json"

		o run "$P" --state-dir "$S" --report "$T/r2.json" >"$T/run2" 2>&1
		RC=$?
		check "orchd run again: exit status 0 ($RC)" [ "$RC" = 0 ]
		check "orchd run again: idempotent (changed false)" jq -e '.instances[] | select(.id == "shgreet.bob") | .changed == false' "$T/r2.json"
		o outputs "$P" --state-dir "$S" --json >"$T/out2" 2>&1
		check "orchd outputs: runs counts" jq -e '.["shgreet.bob"].runs == 2' "$T/out2"

		o plan "$P" --state-dir "$S" --target shgreet.bob --detailed-exitcode >"$T/plan" 2>&1
		RC=$?
		check "orchd plan: no change (exit status $RC)" [ "$RC" = 0 ]

		o destroy "$P" --state-dir "$S" >"$T/destroy" 2>&1
		RC=$?
		check "orchd destroy: exit status 0 ($RC)" [ "$RC" = 0 ]
		o outputs "$P" --state-dir "$S" --json >"$T/out3" 2>&1
		check "orchd outputs: nothing after destroy" jq -e '.["shgreet.bob"] // {} | length == 0' "$T/out3"

		cat >"$T/bad.yaml" <<'EOF'
bad:
  shgreet:
    - name: typo
      greting: hi
      pause: soon
EOF
		o run "$T/bad.yaml" --state-dir "$T/state-bad" >"$T/bad" 2>&1
		RC=$?
		check "orchd run, invalid config: fails ($RC)" [ "$RC" != 0 ]
		check "orchd run, invalid config: the unknown key by path" grep -q "unknown key 'greting' (did you mean 'greeting'?)" "$T/bad"
		check "orchd run, invalid config: the missing key" grep -q "who: is required" "$T/bad"

		cat >"$T/slow.yaml" <<'EOF'
slow:
  shgreet:
    - name: slow
      who: Slow
      pause: 34
      execution: {timeout: 2s, grace: 5s, max_attempts: 1}
EOF
		t0=$(now)
		o run "$T/slow.yaml" --state-dir "$T/state-slow" --report "$T/r3.json" >"$T/slow" 2>&1
		RC=$?
		t1=$(now)
		check "orchd timeout: the run fails ($RC)" [ "$RC" = 1 ]
		check "orchd timeout: cancelled within the grace ($((t1 - t0)) s)" [ $((t1 - t0)) -le 6 ]
		check "orchd timeout: the extension said so" grep -q "cancelled" "$T/slow"
		check "orchd timeout: reported timed out, not killed" jq -e '.instances[0] | .status == "timed out" and (.reason | test("killed") | not)' "$T/r3.json"
		check "orchd timeout: the command it ran is gone" no_leftover "sleep 34"
	fi
fi

printf '%d checks: %d passed, %d failed, %d skipped (shell %s)\n' \
	$((PASS + FAIL + SKIP)) "$PASS" "$FAIL" "$SKIP" "$TSH"
[ "$FAIL" -eq 0 ]
