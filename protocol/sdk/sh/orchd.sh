# orchd.sh: the POSIX sh SDK for orchd extensions (protocol 1, revision 1.1).
#
# An extension sources this file, defines its actions as shell functions and
# calls orchd_main:
#
#     ORCHD_NAME=greet ORCHD_VERSION=0.1.0
#     . "$(dirname "$0")/orchd.sh"
#     orchd_validate() { orchd_unknown_keys who; orchd_require who non-empty-string; }
#     orchd_apply() { orchd_get who .who; orchd_output message "hello, $who"; }
#     orchd_main "$@"
#
# Needs a POSIX shell and jq (1.6 or later); uses wc, tr, iconv, awk, mkdir,
# mv, rm, sleep, ps (optional) from the base system.  See README.md for the
# reference; protocol/PROTOCOL.md is the normative text.
#
# Everything here is a function or a variable starting with orchd_/ORCHD_
# (the API) or _orchd_/_ORCHD_ (private).  Sourcing the file only defines
# them: orchd_main does the work.  It uses file descriptors 8 (orchd's
# input) and 9 (orchd's output) while it runs.

ORCHD_SDK_VERSION=0.1.0
_ORCHD_PROTO_MIN=1
_ORCHD_PROTO_MAX=1
_ORCHD_MAX_LINE=1048576
: "${ORCHD_JQ:=jq}"

# --- the verdict of one line (PROTOCOL.md §4, §6; protocol/vectors) ---------

# awk: a strict RFC 8259 scan of one line, in the C locale (byte positions).
# It prints "STATUS POS" (STATUS ok, syntax, depth or trailing; POS the
# 0-based byte offset of the first problem, -1 for ok) and a JSON array of the
# key paths (one or two keys deep) of number literals with a fraction or an
# exponent: jq cannot tell 1.0 from 1, the protocol can ("an integer").
# jq 1.6 also refuses a lone high surrogate escape (\ud800 not followed by
# a low one), which JSON allows: with -v fix=FILE, the line with each of them
# replaced by \ufffd (the same length) is written to FILE, if there is one.
_ORCHD_SCAN_AWK='
function bad(k) { if (st == "") { st = k; ep = p - 1 } }
function ws(   c) {
	while (p <= n) {
		c = substr(s, p, 1)
		if (c == " " || c == "\t" || c == "\r" || c == "\n") p++
		else return
	}
}
function str(   c, q) {
	q = p; p++
	for (;;) {
		if (p > n) { bad("syntax"); return "" }
		c = substr(s, p, 1)
		if (c == "\"") { p++; return substr(s, q, p - q) }
		if (c == "\\") {
			c = substr(s, p + 1, 1)
			if (c != "" && index("\"\\/bfnrt", c)) p += 2
			else if (c == "u" && substr(s, p + 2, 4) ~ /^[0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f]$/) {
				if (substr(s, p + 2, 2) ~ /^[dD][89abAB]$/ &&
					substr(s, p + 6, 4) !~ /^\\u[dD][c-fC-F]$/) lone[++nlone] = p
				p += 6
			}
			else { p++; bad("syntax"); return "" }
		} else if (index(ctl, c)) { bad("syntax"); return "" }
		else p++
	}
}
function val(d, path, nk,   c, e, t, k, q) {
	ws()
	if (p > n) { bad("syntax"); return }
	c = substr(s, p, 1)
	if (c == "{" || c == "[") {
		if (d >= 64) { bad("depth"); return }
		e = (c == "{") ? "}" : "]"
		p++; ws()
		if (substr(s, p, 1) == e) { p++; return }
		for (;;) {
			if (c == "{") {
				ws()
				if (substr(s, p, 1) != "\"") { bad("syntax"); return }
				k = str(); if (st != "") return
				ws()
				if (substr(s, p, 1) != ":") { bad("syntax"); return }
				p++
				val(d + 1, (nk ? path "," : "") k, nk + 1)
			} else val(d + 1, "", 99)
			if (st != "") return
			ws(); q = substr(s, p, 1)
			if (q == ",") { p++; continue }
			if (q == e) { p++; return }
			bad("syntax"); return
		}
	}
	if (c == "\"") { str(); return }
	q = p
	while (p <= n && index("-+.0123456789eEtrufalsn", substr(s, p, 1))) p++
	t = substr(s, q, p - q)
	if (t == "true" || t == "false" || t == "null") return
	if (t !~ /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$/) { p = q; bad("syntax"); return }
	if (t ~ /[.eE]/ && nk >= 1 && nk <= 2) nonint = nonint (nonint == "" ? "" : ",") "[" path "]"
}
BEGIN { for (i = 1; i < 32; i++) ctl = ctl sprintf("%c", i) }
{ s = (NR > 1) ? s "\n" $0 : $0 }
END {
	n = length(s); p = 1; st = ""; nonint = ""
	val(0, "", 0)
	if (st == "") { ws(); if (p <= n) { st = "trailing"; ep = p - 1 } }
	if (st == "") { st = "ok"; ep = -1 }
	print st, ep
	print "[" nonint "]"
	if (nlone && st == "ok" && fix != "") {
		out = ""; q = 1
		for (i = 1; i <= nlone; i++) { out = out substr(s, q, lone[i] - q) "\\ufffd"; q = lone[i] + 6 }
		printf "%s", out substr(s, q) > fix
	}
}'

# jq: the message checks of protocol/codec.c, in the same order, on a line
# the scan found to be strict JSON.  $dir: to_ext or from_ext; $ni[0]: the
# non-integer paths of the scan.
_ORCHD_VERDICT_JQ='
def among($xs): . as $x | any($xs[]; . == $x);
def ktext: {"string": "a string", "nonempty": "a non-empty string", "int": "an integer",
  "bool": "a boolean", "object": "an object", "strings": "an array of strings",
  "version": "a dotted version string"}[.];
def isint($p): (getpath($p) | type) == "number" and (any($ni[0][]; . == $p) | not);
def ok($p; $k): getpath($p) as $v | ($v | type) as $t |
  if $k == "string" then $t == "string"
  elif $k == "nonempty" then $t == "string" and ($v | length) > 0
  elif $k == "version" then $t == "string" and ($v | test("\\A[0-9][^.]*(\\.[0-9][^.]*)*\\z"))
  elif $k == "int" then isint($p)
  elif $k == "bool" then $t == "boolean"
  elif $k == "object" then $t == "object"
  elif $k == "strings" then $t == "array" and all($v[]; type == "string")
  else true end;
def fld($f; $k; $req):
  if has($f) | not then (if $req then "missing required field '\''\($f)'\''" else empty end)
  elif ok([$f]; $k) then empty
  else "field '\''\($f)'\'' must be \($k | ktext)" end;
def req($f; $k): fld($f; $k; true);
def opt($f; $k): fld($f; $k; false);
def plain: . != "" and (startswith("/") | not) and all(split("/")[]; . != "" and . != "." and . != "..");
def vof($v; $vk; $f; $rel):
  if has($f) | not then req($v; $vk)
  elif has($v) then "fields '\''\($v)'\'' and '\''\($f)'\'' are exclusive"
  else first(req($f; "nonempty"),
    (if $rel then
       (if .[$f] | plain then empty
        else "field '\''\($f)'\'' must be a relative path without '\''.'\'', '\''..'\'' or empty segments" end)
     elif .[$f] | startswith("/") then empty
     else "field '\''\($f)'\'' must be an absolute path" end)) end;
def id: first(req("id"; "int"), (if .id < 0 then "field '\''id'\'' must be a non-negative integer" else empty end));
def body($t):
  if $t == "hello" and $dir == "to_ext" then first(req("protocol"; "object"),
    (if .protocol | has("min") | not then "missing required field '\''protocol.min'\''"
     elif isint(["protocol", "min"]) | not then "field '\''protocol.min'\'' must be an integer"
     elif .protocol | has("max") | not then "missing required field '\''protocol.max'\''"
     elif isint(["protocol", "max"]) | not then "field '\''protocol.max'\'' must be an integer"
     elif .protocol.min < 1 or .protocol.max < .protocol.min then "field '\''protocol'\'' must satisfy 1 <= min <= max"
     else empty end),
    req("orchd_version"; "version"))
  elif $t == "hello" then first(req("protocol"; "int"),
    (if .protocol < 1 then "field '\''protocol'\'' must be a positive integer" else empty end),
    req("name"; "nonempty"), req("version"; "version"), opt("min_orchd_version"; "version"),
    req("actions"; "strings"), opt("features"; "strings"))
  elif $t == "action" then first(req("action"; "string"),
    (if .action | among(["describe", "validate", "plan", "apply", "destroy"]) | not
     then "unknown action '\''\(.action)'\''"
     elif .action == "describe" then "ok"
     else empty end),
    req("instance"; "nonempty"), req("stack"; "string"),
    vof("config"; "object"; "config_file"; false), vof("state"; "any"; "state_file"; false),
    vof("outputs"; "object"; "outputs_file"; false), req("workdir"; "string")) | select(. != "ok")
  elif $t == "cancel" then req("reason"; "string")
  elif $t == "response" then first(id, req("ok"; "bool"),
    (if .ok then req("result"; "object") else req("error"; "string") end))
  elif $t == "log" then first(req("level"; "string"),
    (if .level | among(["debug", "info", "warning", "error"]) then empty
     else "field '\''level'\'' must be one of debug, info, warning, error" end),
    req("message"; "string"))
  elif $t == "progress" then first(req("message"; "string"),
    (if has("percent") and ((.percent | type) != "number" or .percent < 0 or .percent > 100)
     then "field '\''percent'\'' must be a number from 0 to 100" else empty end))
  elif $t == "output" then first(req("key"; "nonempty"), vof("value"; "any"; "file"; true), opt("secret"; "bool"))
  elif $t == "state" then first(vof("state"; "any"; "file"; true), opt("secret"; "bool"))
  elif $t == "error" then first(req("message"; "string"), opt("retryable"; "bool"))
  elif $t == "result" then first(req("status"; "string"),
    (if .status | among(["success", "failure"]) then empty
     else "field '\''status'\'' must be \"success\" or \"failure\"" end),
    opt("changed"; "bool"), opt("summary"; "string"), opt("describe"; "object"),
    (if has("errors") | not then empty
     elif (.errors | type) != "array" then "field '\''errors'\'' must be an array"
     else .errors | to_entries[] | .key as $i | .value |
       if type != "object" then "field '\''errors[\($i)]'\'' must be an object"
       elif (.path | type) != "string" then "field '\''errors[\($i)].path'\'' must be a string"
       elif (.message | type) != "string" then "field '\''errors[\($i)].message'\'' must be a string"
       else empty end end))
  elif $t == "request" then first(id, req("op"; "nonempty"),
    (if .op == "fetch" then req("source"; "object") else empty end))
  elif $t == "mask" then req("value"; "string")
  else "internal error: no validator" end;
def allowed($t):
  if $t == "hello" then true
  elif $t | among(["action", "cancel", "response"]) then $dir == "to_ext"
  else $dir == "from_ext" end;
if type != "object" then "non-protocol"
else . as $m | [first(
  (if has("type") | not then "missing required field '\''type'\''"
   elif (.type | type) != "string" then "field '\''type'\'' must be a string"
   else empty end),
  (.type as $t |
   if $t | among(["hello", "action", "cancel", "response", "log", "progress", "output",
                  "mask", "state", "error", "result", "request"]) | not
   then "unknown message type '\''\($t)'\''"
   elif allowed($t) | not
   then "message type '\''\($t)'\'' is not allowed \(if $dir == "to_ext" then "from orchd" else "from an extension" end)"
   else body($t) | "\($t): \(.)" end))]
  | if length == 0 then "valid:\($m.type)" else "error:\(.[0])" end
end'

# orchd_verdict DIR [FILE [SCRATCH]]: the verdict for one raw line (the bytes
# of FILE, or of stdin, without the terminating LF) as protocol/vectors
# defines it: empty, non-protocol, valid:TYPE or error:TEXT.  DIR is to_ext
# (orchd to extension) or from_ext.  SCRATCH: a path prefix for work files
# (default: a temporary directory, removed afterwards).
orchd_verdict() {
	case ${1:-} in
	to_ext | from_ext) ;;
	*)
		printf 'orchd_verdict: DIR must be to_ext or from_ext\n' >&2
		return 2
		;;
	esac
	_ov_dir=$1 _ov_file=${2:--} _ov_scr=${3:-} _ov_tmp=
	if [ -z "$_ov_scr" ]; then
		_ov_tmp=$(_orchd_mktemp) || return 2
		_ov_scr=$_ov_tmp/v
	fi
	if [ "$_ov_file" = - ]; then
		cat >"$_ov_scr.line" || return 2
		_ov_file=$_ov_scr.line
	fi
	_orchd_verdict_file
	_ov_rc=$?
	[ -n "$_ov_tmp" ] && rm -rf "$_ov_tmp"
	return $_ov_rc
}

_orchd_verdict_file() {
	# 1. length (any content), 2. whitespace only, 3. NUL, 4. UTF-8 and
	# strict JSON with the depth (whichever problem comes first, as a
	# left-to-right parser sees it), 5. the message checks (jq)
	_ov_n=$(($(wc -c <"$_ov_file"))) || return 2
	if [ "$_ov_n" -gt "$_ORCHD_MAX_LINE" ]; then
		printf 'error:line exceeds %s bytes\n' "$_ORCHD_MAX_LINE"
		return 0
	fi
	if [ "$(tr -d ' \t\r\n' <"$_ov_file" | wc -c)" -eq 0 ]; then
		printf 'empty\n'
		return 0
	fi
	if [ "$(tr -cd '\000' <"$_ov_file" | wc -c)" -ne 0 ]; then
		printf 'non-protocol\n'
		return 0
	fi
	_ov_u=
	if ! iconv -f UTF-8 -t UTF-8 <"$_ov_file" >/dev/null 2>"$_ov_scr.err"; then
		# glibc: "illegal input sequence at position N"; else: at 0
		_ov_u=$(sed -n 's/.*position \([0-9][0-9]*\).*/\1/p' "$_ov_scr.err" | sed -n 1p)
		: "${_ov_u:=0}"
	fi
	rm -f "$_ov_scr.fix"
	LC_ALL=C awk -v fix="$_ov_scr.fix" "$_ORCHD_SCAN_AWK" "$_ov_file" >"$_ov_scr.scan" || return 2
	{
		IFS=" " read -r _ov_st _ov_pos
		IFS= read -r _ov_ni
	} <"$_ov_scr.scan"
	case $_ov_st in
	depth)
		if [ -z "$_ov_u" ] || [ "$_ov_u" -gt "$_ov_pos" ]; then
			printf 'error:message nested deeper than 64 levels\n'
		else
			printf 'non-protocol\n'
		fi
		return 0
		;;
	ok) ;;
	*)
		printf 'non-protocol\n'
		return 0
		;;
	esac
	if [ -n "$_ov_u" ]; then
		printf 'non-protocol\n'
		return 0
	fi
	printf '%s\n' "$_ov_ni" >"$_ov_scr.ni"
	_ov_json=$_ov_file
	[ -e "$_ov_scr.fix" ] && _ov_json=$_ov_scr.fix
	"$ORCHD_JQ" -r --arg dir "$_ov_dir" --slurpfile ni "$_ov_scr.ni" \
		"$_ORCHD_VERDICT_JQ" "$_ov_json" 2>/dev/null || printf 'non-protocol\n'
}

# --- small tools --------------------------------------------------------------

_orchd_mktemp() {
	mktemp -d "${TMPDIR:-/tmp}/orchd-sh.XXXXXX" 2>/dev/null && return 0
	_omt=${TMPDIR:-/tmp}/orchd-sh.$$.$(date +%s 2>/dev/null)
	(umask 077 && mkdir "$_omt") && printf '%s\n' "$_omt"
}

# _orchd_say TEXT...: a diagnostic on stderr (orchd logs it at info)
_orchd_say() { printf '%s: %s\n' "${ORCHD_NAME:-orchd.sh}" "$*" >&2; }

_orchd_defined() { # NAME: a shell function (or command) of that name exists
	_od=$(command -v "$1" 2>/dev/null) || return 1
	case $_od in */*) return 1 ;; esac
	return 0
}

# _orchd_send LINE...: protocol lines to orchd (fd 9).  When orchd stopped
# reading (the write fails with EPIPE: SIGPIPE is ignored for the write
# only, §9.5): in the worker, status 4 and the main process is told, which
# stops the action; in the main process, exit 1
_orchd_send() {
	(
		trap '' PIPE
		printf '%s\n' "$@" >&9
	) 2>/dev/null && return 0
	if [ "${_ORCHD_IN_WORKER:-}" = 1 ]; then
		: >"$_ORCHD_T/epipe"
		kill -s USR1 $$ 2>/dev/null
		return 4
	fi
	_orchd_say "orchd stopped reading (cannot write on stdout): stopping"
	exit 1
}

# _orchd_emit JQ-ARGS... FILTER: build one message with jq (stdin is jq's
# input) and send it.  Status 3 (nothing sent) when it would exceed a line.
_orchd_emit() {
	_oe_l=$("$ORCHD_JQ" -c "$@") || {
		_orchd_say "internal error: cannot build a message"
		return 1
	}
	if [ "${#_oe_l}" -gt 200000 ] &&
		[ "$(printf '%s' "$_oe_l" | wc -c)" -gt "$_ORCHD_MAX_LINE" ]; then
		return 3
	fi
	_orchd_send "$_oe_l"
}

_orchd_in_action() {
	if [ -z "${_ORCHD_A:-}" ]; then
		_orchd_say "$1: only inside an action (orchd_validate, orchd_plan, orchd_apply, orchd_destroy)"
		return 1
	fi
}

# --- sending: logs, progress, outputs, state, mask --------------------------

# orchd_log LEVEL MESSAGE...: a log line (debug, info, warning or error)
orchd_log() {
	_ol_level=${1:-}
	shift 2>/dev/null
	case $_ol_level in
	debug | info | warning | error) ;;
	warn) _ol_level=warning ;;
	*)
		_orchd_say "orchd_log: unknown level '$_ol_level' (debug, info, warning, error): $*"
		return 2
		;;
	esac
	# a message too long for a line is cut (150000 characters fit any escaping)
	printf '%s' "$*" | _orchd_emit -Rs --arg l "$_ol_level" \
		'{type: "log", level: $l, message: (if length > 150000 then .[0:150000] + " [truncated]" else . end)}'
}
orchd_debug() { orchd_log debug "$@"; }
orchd_info() { orchd_log info "$@"; }
orchd_warning() { orchd_log warning "$@"; }

# orchd_progress MESSAGE [PERCENT]: what is happening (PERCENT: 0..100)
orchd_progress() {
	_op_pct=${2:-}
	if [ -n "$_op_pct" ] && ! "$ORCHD_JQ" -en --arg p "$_op_pct" \
		'(try ($p | tonumber) catch null) as $n | $n != null and $n >= 0 and $n <= 100' >/dev/null; then
		_orchd_say "orchd_progress: percent '$_op_pct' is not a number from 0 to 100 (left out)"
		_op_pct=
	fi
	printf '%s' "${1:-}" | _orchd_emit -Rs --arg p "$_op_pct" \
		'{type: "progress", message: (if length > 150000 then .[0:150000] + " [truncated]" else . end)}
		 + (if $p == "" then {} else {percent: ($p | tonumber)} end)'
}

# orchd_mask VALUE: orchd never prints VALUE from now on
orchd_mask() {
	printf '%s' "${1:-}" | _orchd_emit -Rs '{type: "mask", value: .}'
}

# _orchd_value_msg KIND SECRET VALUE-IS-JSON VALUE [KEY]: an output or state
# message; a value too large for a line goes in a file of the workdir (§4.1)
_orchd_value_msg() {
	_ovm_kind=$1 _ovm_secret=$2 _ovm_isjson=$3 _ovm_val=$4 _ovm_key=${5:-}
	if [ "$_ovm_isjson" = 1 ]; then
		_ovm_in='-s'
		_ovm_get='if length != 1 then error("not exactly one JSON value") else .[0] end'
	else
		_ovm_in='-Rs'
		_ovm_get='.'
	fi
	_ovm_f="{type: \$kind} + (if \$kind == \"output\" then {key: \$key} else {} end)"
	_ovm_f="$_ovm_f + (if \$secret then {secret: true} else {} end)"
	# (if/else: the author's set -e must not stop this on status 3)
	if printf '%s' "$_ovm_val" | _orchd_emit "$_ovm_in" --arg kind "$_ovm_kind" --arg key "$_ovm_key" \
		--argjson secret "$_ovm_secret" \
		"($_ovm_get) as \$v | $_ovm_f + (if \$kind == \"output\" then {value: \$v} else {state: \$v} end)" \
		2>"$_ORCHD_A/jqerr"; then
		_ovm_rc=0
	else
		_ovm_rc=$?
	fi
	if [ $_ovm_rc = 3 ]; then
		_ovm_n=$(($(cat "$_ORCHD_A/nfiles" 2>/dev/null || echo 0) + 1))
		printf '%s\n' "$_ovm_n" >"$_ORCHD_A/nfiles"
		_ovm_rel=.orchd-sdk/$_ovm_kind-$$-$_ovm_n.json
		mkdir -p "$ORCHD_WORKDIR/.orchd-sdk" &&
			printf '%s' "$_ovm_val" | "$ORCHD_JQ" -c "$_ovm_in" "$_ovm_get" >"$ORCHD_WORKDIR/$_ovm_rel" &&
			"$ORCHD_JQ" -cn --arg kind "$_ovm_kind" --arg key "$_ovm_key" --arg file "$_ovm_rel" \
				--argjson secret "$_ovm_secret" \
				"$_ovm_f + {file: \$file}" </dev/null >"$_ORCHD_A/line" &&
			_orchd_send "$(cat "$_ORCHD_A/line")"
		_ovm_rc=$?
	elif [ $_ovm_rc = 4 ]; then
		return 4
	elif [ $_ovm_rc != 0 ]; then
		_orchd_say "orchd_$_ovm_kind: the value is not exactly one JSON value: $(sed -n 1p "$_ORCHD_A/jqerr")"
		return 2
	fi
	return $_ovm_rc
}

# orchd_output [--secret] [--json] KEY VALUE: an output (VALUE a string, or
# JSON text with --json; --secret: stored encrypted, never printed)
orchd_output() {
	_orchd_in_action orchd_output || return 1
	_oo_secret=false _oo_json=0
	while :; do
		case ${1:-} in
		--secret) _oo_secret=true ;;
		--json) _oo_json=1 ;;
		--) shift; break ;;
		*) break ;;
		esac
		shift
	done
	if [ $# -ne 2 ] || [ -z "$1" ]; then
		_orchd_say "usage: orchd_output [--secret] [--json] KEY VALUE"
		return 2
	fi
	case $1 in
	*[!A-Za-z0-9_-]*) _orchd_say "orchd_output: key '$1' cannot be referenced from a pipeline ([A-Za-z0-9_-]+)" ;;
	esac
	_orchd_value_msg output "$_oo_secret" "$_oo_json" "$2" "$1"
}

# orchd_state [--secret] JSON: the new state (the last one sent wins; null
# erases it).  Build JSON with orchd_json.
orchd_state() {
	_orchd_in_action orchd_state || return 1
	_os_secret=false
	[ "${1:-}" = --secret ] && { _os_secret=true; shift; }
	if [ $# -ne 1 ]; then
		_orchd_say "usage: orchd_state [--secret] JSON"
		return 2
	fi
	_orchd_value_msg state "$_os_secret" 1 "$1" && : >"$_ORCHD_A/state_sent"
}

# orchd_json [JQ-OPTIONS...] FILTER: compact JSON built by jq -n, e.g.
#   orchd_json --arg who "$who" --argjson runs 2 '{who: $who, runs: $runs}'
orchd_json() { "$ORCHD_JQ" -cn "$@"; }

# --- the result ---------------------------------------------------------------

# orchd_changed true|false: the action changed (plan: would change) something
orchd_changed() {
	_orchd_in_action orchd_changed || return 1
	case ${1:-} in
	true | false) printf '%s' "$1" >"$_ORCHD_A/changed" ;;
	*)
		_orchd_say "orchd_changed: true or false, not '${1:-}'"
		return 2
		;;
	esac
}

# orchd_summary TEXT...: the result's one-line summary
orchd_summary() {
	_orchd_in_action orchd_summary || return 1
	printf '%s' "$*" >"$_ORCHD_A/summary"
}

# orchd_fail [--retryable] [SUMMARY...]: the action fails (return from your
# function afterwards); --retryable also sends an error message saying a
# retry may succeed
orchd_fail() {
	_orchd_in_action orchd_fail || return 1
	_of_retry=false
	[ "${1:-}" = --retryable ] && { _of_retry=true; shift; }
	: >"$_ORCHD_A/failed"
	[ $# -gt 0 ] && printf '%s' "$*" >"$_ORCHD_A/summary"
	if [ $_of_retry = true ]; then
		printf '%s' "${*:-$ORCHD_ACTION failed}" | _orchd_emit -Rs '{type: "error", message: ., retryable: true}'
	fi
	return 0
}

# --- reading the action: config, previous state and outputs ---------------------

_ORCHD_JQ_DEFS='
def _out: if type == "string" then . else tojson end;
def _otype(f): (try ([path(f)] | .[0]) catch null) as $p |
  if $p == null or ($p | length) == 0 then (first(f) | type)
  elif (try (getpath($p[:-1]) | if type == "object" then has($p[-1])
        elif type == "array" then ($p[-1] | type) == "number" and $p[-1] < length
        else false end) catch false) then (getpath($p) | type)
  else "missing" end;'

# _orchd_q FILE MODE FILTER [DEFAULT]
_orchd_q() {
	if [ ! -r "$1" ]; then
		_orchd_say "no action data here (${1:-?}): call this inside an action"
		return 1
	fi
	case $2 in
	raw) "$ORCHD_JQ" -r --arg d "${4:-}" "$_ORCHD_JQ_DEFS ($3) | if . == null then \$d else _out end" "$1" ;;
	json) "$ORCHD_JQ" -c "$_ORCHD_JQ_DEFS $3" "$1" ;;
	type) "$ORCHD_JQ" -r "$_ORCHD_JQ_DEFS _otype($3)" "$1" ;;
	esac
}

# orchd_cfg FILTER [DEFAULT]: a config value (strings raw, other values as
# compact JSON; DEFAULT, or nothing, when it is null or absent)
orchd_cfg() { _orchd_q "${ORCHD_CONFIG_FILE:-}" raw "${1:-.}" "${2:-}"; }
# orchd_cfg_json FILTER: the value as compact JSON (null when absent)
orchd_cfg_json() { _orchd_q "${ORCHD_CONFIG_FILE:-}" json "${1:-.}"; }
# orchd_cfg_type FILTER: string, number, boolean, object, array, null, or
# missing (the key is absent)
orchd_cfg_type() { _orchd_q "${ORCHD_CONFIG_FILE:-}" type "${1:-.}"; }
# orchd_cfg_keys [FILTER]: the keys of a map, one a line
orchd_cfg_keys() { _orchd_q "${ORCHD_CONFIG_FILE:-}" json "(${1:-.}) | if type == \"object\" then keys_unsorted[] else empty end" | "$ORCHD_JQ" -r .; }
# orchd_prev_state [FILTER [DEFAULT]]: the previous state (null: none)
orchd_prev_state() { _orchd_q "${ORCHD_STATE_FILE:-}" raw "${1:-.}" "${2:-}"; }
orchd_prev_state_json() { _orchd_q "${ORCHD_STATE_FILE:-}" json "${1:-.}"; }
# orchd_prev_output KEY [DEFAULT]: a previous output's value
orchd_prev_output() {
	[ -r "${ORCHD_OUTPUTS_FILE:-}" ] || { _orchd_say "orchd_prev_output: call it inside an action"; return 1; }
	"$ORCHD_JQ" -r --arg k "${1:-}" --arg d "${2:-}" "$_ORCHD_JQ_DEFS .[\$k] | if . == null then \$d else _out end" "$ORCHD_OUTPUTS_FILE"
}
orchd_prev_outputs_json() { _orchd_q "${ORCHD_OUTPUTS_FILE:-}" json "${1:-.}"; }
# orchd_msg FILTER: a field of the action message (.instance, .stack, ...)
orchd_msg() { _orchd_q "${ORCHD_MESSAGE_FILE:-}" raw "${1:-.}" "${2:-}"; }

# orchd_get [--config|--state|--outputs|--msg] VAR FILTER [DEFAULT]: sets the
# shell variable VAR to the value, exactly (trailing newlines kept)
orchd_get() {
	_og_file=${ORCHD_CONFIG_FILE:-}
	case ${1:-} in
	--config) shift ;;
	--state) _og_file=${ORCHD_STATE_FILE:-}; shift ;;
	--outputs) _og_file=${ORCHD_OUTPUTS_FILE:-}; shift ;;
	--msg) _og_file=${ORCHD_MESSAGE_FILE:-}; shift ;;
	esac
	case ${1:-} in
	'' | [0-9]* | *[!A-Za-z0-9_]*)
		_orchd_say "orchd_get: '${1:-}' is not a variable name"
		return 2
		;;
	esac
	[ -r "$_og_file" ] || { _orchd_say "orchd_get: call it inside an action"; return 1; }
	_og_v=$("$ORCHD_JQ" -j --arg d "${3:-}" "$_ORCHD_JQ_DEFS first(${2:-.}) | if . == null then \$d else _out end" "$_og_file" && printf x) ||
		return 1
	eval "$1=\${_og_v%x}"
}

# --- configuration errors (validate) ----------------------------------------------

_ORCHD_ERR_DEFS='
def _text: .path as $p | if $p == "" then .message
  elif .message | contains("'\''\($p)'\''") then .message
  else "\($p): \(.message)" end;
def _topath: ltrimstr(".") | [scan("[^.\\[\\]]+|\\[[0-9]+\\]")]
  | map(if startswith("[") then .[1:-1] | tonumber else . end);
def _ref: type == "string" and test("\\$\\{\\{");
def _lev($a; $b):
  if ($a | length) >= 63 or ($b | length) >= 63 then 99 else
  ($a | explode) as $s | ($b | explode) as $t |
  reduce range(0; $s | length) as $i ([range(0; ($t | length) + 1)];
    . as $prev | reduce range(0; $t | length) as $j ([$i + 1];
      . + [[$prev[$j] + (if $s[$i] == $t[$j] then 0 else 1 end), $prev[$j + 1] + 1, .[$j] + 1] | min]))
  | .[-1] end;
def _closest($k; $known):
  reduce $known[] as $c ({d: 3, best: null};
    _lev($k; $c) as $d | if $d < .d then {d: $d, best: $c} else . end) | .best;'

# _orchd_add_errors FILE: record the errors of FILE (JSON lines
# {"path","message"}) and log each one at level error
_orchd_add_errors() {
	[ -s "$1" ] || return 0
	cat "$1" >>"$_ORCHD_A/errors.jsonl" || return 1
	_oae_l=$("$ORCHD_JQ" -c "$_ORCHD_ERR_DEFS {type: \"log\", level: \"error\", message: _text}" "$1") &&
		_orchd_send "$_oae_l"
}

# orchd_error PATH MESSAGE: a configuration error at PATH (who, env.FOO,
# command[2]; "" for the whole config), e.g. orchd_error who "is required"
orchd_error() {
	_orchd_in_action orchd_error || return 1
	_oe_path=${1:-}
	_oe_path=${_oe_path#.}
	"$ORCHD_JQ" -cn --arg p "$_oe_path" --arg m "${2:-invalid}" '{path: $p, message: $m}' >"$_ORCHD_A/newerr" &&
		_orchd_add_errors "$_ORCHD_A/newerr"
}

# orchd_errors_count: how many configuration errors so far (on stdout)
orchd_errors_count() {
	_orchd_in_action orchd_errors_count || return 1
	if [ -s "$_ORCHD_A/errors.jsonl" ]; then wc -l <"$_ORCHD_A/errors.jsonl" | tr -d ' '; else echo 0; fi
}

# orchd_unknown_keys [--in PATH] KEY...: an error for every key of the config
# (or of the map at PATH) that is not one of KEY..., at its own path, with
# "did you mean" when a KEY is close
orchd_unknown_keys() {
	_orchd_in_action orchd_unknown_keys || return 1
	_ou_in=
	if [ "${1:-}" = --in ]; then
		_ou_in=${2:-}
		_ou_in=${_ou_in#.}
		shift 2
	fi
	"$ORCHD_JQ" -c --arg in "$_ou_in" "$_ORCHD_ERR_DEFS"'
	  $ARGS.positional as $known |
	  ($in | _topath) as $p | (try getpath($p) catch null) as $m |
	  if $m == null or ($m | _ref) then empty
	  elif ($m | type) != "object" then {path: $in, message: "must be a map"}
	  else $m | keys_unsorted[] | select(. as $k | any($known[]; . == $k) | not) |
	    (if $in == "" then . else "\($in).\(.)" end) as $path | _closest(.; $known) as $best |
	    {path: $path, message: ("unknown key '\''\(.)'\''" +
	      (if $best == null then "" else " (did you mean '\''\($best)'\''?)" end))}
	  end' "$ORCHD_CONFIG_FILE" --args "$@" >"$_ORCHD_A/newerr" &&
		_orchd_add_errors "$_ORCHD_A/newerr"
}

# orchd_require PATH TYPE / orchd_check PATH TYPE: an error when the value at
# PATH is absent (require: "is required") or not of TYPE: string,
# non-empty-string, number, integer, boolean, map, list, list-of-strings,
# map-of-strings, any.  A string holding "${{" (an output not known yet,
# PROTOCOL.md §7.2) is accepted for any type.
orchd_require() { _orchd_check true "$@"; }
orchd_check() { _orchd_check false "$@"; }
_orchd_check() {
	_orchd_in_action orchd_check || return 1
	_oc_path=${2:-}
	_oc_path=${_oc_path#.}
	case ${3:-any} in
	object) _oc_type=map ;;
	array) _oc_type=list ;;
	bool) _oc_type=boolean ;;
	int) _oc_type=integer ;;
	string | non-empty-string | number | integer | boolean | map | list | list-of-strings | map-of-strings | any) _oc_type=${3:-any} ;;
	*)
		_orchd_say "orchd_check: unknown type '$3'"
		return 2
		;;
	esac
	"$ORCHD_JQ" -c --arg path "$_oc_path" --arg k "$_oc_type" --argjson req "$1" "$_ORCHD_ERR_DEFS"'
	  ($path | _topath) as $p |
	  (try (if ($p | length) == 0 then true
	        else getpath($p[:-1]) | if type == "object" then has($p[-1])
	        elif type == "array" then ($p[-1] | type) == "number" and $p[-1] < length
	        else false end end) catch false) as $has |
	  if $has | not then (if $req then {path: $path, message: "is required"} else empty end)
	  else getpath($p) |
	    (if $k == "any" then empty
	     elif $k == "string" then (if type == "string" then empty else "must be a string" end)
	     elif $k == "non-empty-string" then (if type == "string" and length > 0 then empty else "must be a non-empty string" end)
	     elif _ref then empty
	     elif $k == "number" then (if type == "number" then empty else "must be a number" end)
	     elif $k == "integer" then (if type == "number" and . == floor then empty else "must be an integer" end)
	     elif $k == "boolean" then (if type == "boolean" then empty else "must be a boolean" end)
	     elif $k == "map" then (if type == "object" then empty else "must be a map" end)
	     elif $k == "list" then (if type == "array" then empty else "must be a list" end)
	     elif $k == "list-of-strings" then
	       (if type != "array" then "must be a list of strings"
	        else to_entries[] | select(.value | type != "string") | {path: "\($path)[\(.key)]", message: "must be a string"} end)
	     else
	       (if type != "object" then "must be a map of strings"
	        else to_entries[] | select(.value | type != "string")
	          | {path: (if $path == "" then .key else "\($path).\(.key)" end), message: "must be a string"} end)
	     end) | if type == "string" then {path: $path, message: .} else . end
	  end' "$ORCHD_CONFIG_FILE" >"$_ORCHD_A/newerr" &&
		_orchd_add_errors "$_ORCHD_A/newerr"
}

# --- requests (PROTOCOL.md §6.3) ------------------------------------------------

# orchd_request OP [FIELDS-JSON]: send a request and wait for its response.
# Prints the response's result (compact JSON) and returns 0 when ok; prints
# its error text and returns 1 when not.
orchd_request() {
	_orchd_in_action orchd_request || return 1
	_orq_id=$(cat "$_ORCHD_A/reqid" 2>/dev/null || echo 0)
	printf '%s\n' $((_orq_id + 1)) >"$_ORCHD_A/reqid"
	_orchd_emit -n --arg op "${1:-}" --argjson id "$_orq_id" --argjson f "${2:-{\}}" \
		'{type: "request", id: $id, op: $op} + $f' || return 2
	while [ ! -e "$_ORCHD_A/resp.$_orq_id" ]; do
		if orchd_cancelled; then
			printf 'cancelled\n'
			return 1
		fi
		sleep 0.2 2>/dev/null || sleep 1
	done
	"$ORCHD_JQ" -r 'if .ok then .result | tojson else .error end' "$_ORCHD_A/resp.$_orq_id"
	"$ORCHD_JQ" -e .ok "$_ORCHD_A/resp.$_orq_id" >/dev/null
}

# orchd_fetch SOURCE-JSON: have orchd fetch a git checkout or a verified
# download into the workdir (PROTOCOL.md §6.3); result/error as orchd_request
orchd_fetch() {
	_of_src=$("$ORCHD_JQ" -cn --argjson s "${1:-null}" '{source: $s}') || return 2
	orchd_request fetch "$_of_src"
}

# orchd_cancelled: true once orchd asked to stop (for long loops)
orchd_cancelled() {
	[ -n "${_ORCHD_A:-}" ] && { [ -e "$_ORCHD_A/event" ] || [ -e "$_ORCHD_A/cancel" ]; }
}

# --- the process ---------------------------------------------------------------

# _orchd_classify LINE FILE: the verdict (to_ext) of a line orchd sent,
# which is left in FILE
_orchd_classify() {
	printf '%s' "$1" >"$2"
	orchd_verdict to_ext "$2" "$2"
	# what jq reads from now on: the line with lone surrogates replaced
	if [ -e "$2.fix" ]; then mv "$2.fix" "$2"; fi
}

# _orchd_next_line: the next line of input (fd 8) in _ORCHD_LINE, its
# verdict in _ORCHD_V; status 1 at the end of the input
_orchd_next_line() {
	while :; do
		if ! IFS= read -r _ORCHD_LINE <&8; then
			[ -n "$_ORCHD_LINE" ] || return 1
		fi
		_ORCHD_V=$(_orchd_classify "$_ORCHD_LINE" "$_ORCHD_T/in")
		[ "$_ORCHD_V" = empty ] || return 0
	done
}

_orchd_bad_input() { # WHAT-WAS-EXPECTED
	case $_ORCHD_V in
	error:*) _orchd_say "protocol error: ${_ORCHD_V#error:}" ;;
	valid:*) _orchd_say "protocol error: expected $1, got ${_ORCHD_V#valid:}" ;;
	*) _orchd_say "protocol error: expected $1, got a line that is not a JSON object: $(printf '%.200s' "$_ORCHD_LINE")" ;;
	esac
}

_orchd_features() { printf ' %s ' "${ORCHD_FEATURES-files session}" | tr '\t\n' '  '; }

_orchd_actions() {
	_oa_list=describe
	for _oa_a in validate plan apply destroy; do
		_orchd_defined "orchd_$_oa_a" && _oa_list="$_oa_list $_oa_a"
	done
	printf '%s' "$_oa_list"
}

_orchd_handshake() {
	_orchd_next_line || {
		_orchd_say "end of input before hello"
		exit 1
	}
	[ "$_ORCHD_V" = valid:hello ] || {
		_orchd_bad_input hello
		exit 1
	}
	# the highest version both speak (§5)
	_oh_r=$("$ORCHD_JQ" -r --argjson lo $_ORCHD_PROTO_MIN --argjson hi $_ORCHD_PROTO_MAX \
		'.protocol | ([.min, $lo] | max) as $a | ([.max, $hi] | min) as $b |
		 if $a <= $b then "\($b)" else "- \(.min)..\(.max)" end' "$_ORCHD_T/in")
	case $_oh_r in
	-*)
		_oh_msg="extension $ORCHD_NAME speaks protocol $_ORCHD_PROTO_MIN..$_ORCHD_PROTO_MAX, orchd offers ${_oh_r#- }"
		_orchd_send "$("$ORCHD_JQ" -cn --arg m "$_oh_msg" '{type: "error", message: $m, retryable: false}')"
		_orchd_say "$_oh_msg"
		exit 1
		;;
	esac
	_orchd_send "$("$ORCHD_JQ" -cn --argjson p "$_oh_r" --arg name "$ORCHD_NAME" --arg version "$ORCHD_VERSION" \
		--arg min "${ORCHD_MIN_ORCHD_VERSION:-}" --arg actions "$(_orchd_actions)" \
		--arg features "$(_orchd_features)" \
		'{type: "hello", protocol: $p, name: $name, version: $version}
		 + (if $min == "" then {} else {min_orchd_version: $min} end)
		 + {actions: ($actions | split(" ") | map(select(. != "")))}
		 + (($features | split(" ") | map(select(. != ""))) as $f
		    | if $f == [] then {} else {features: $f} end)')"
}

_orchd_describe() {
	_orchd_send "$("$ORCHD_JQ" -cn --arg name "$ORCHD_NAME" --arg version "$ORCHD_VERSION" \
		--arg description "${ORCHD_DESCRIPTION:-}" --arg actions "$(_orchd_actions)" \
		--argjson schema "${ORCHD_CONFIG_SCHEMA:-{\}}" \
		'{type: "result", status: "success", changed: false, summary: "\($name) \($version)",
		  describe: ({type: $name, version: $version,
		    actions: ($actions | split(" ") | map(select(. != "")))}
		    + (if $description == "" then {} else {description: $description} end)
		    + {config: $schema})}')"
}

# the descendants of PID (and PID), one a line
_orchd_tree() {
	ps -A -o pid= -o ppid= 2>/dev/null | awk -v root="$1" '
		{ parent[$1] = $2; pids[NR] = $1 }
		END {
			want[root] = 1; print root
			do {
				more = 0
				for (i = 1; i <= NR; i++) {
					p = pids[i]
					if (!(p in want) && (parent[p] in want)) { want[p] = 1; print p; more = 1 }
				}
			} while (more)
		}' || printf '%s\n' "$1"
}

# _orchd_kill SIGNAL: signal the pids read on stdin, one a line
_orchd_kill() {
	while IFS= read -r _ok_p; do
		kill -s "$1" "$_ok_p" 2>/dev/null
	done
	return 0
}

_orchd_on_signal() { # NAME
	case ${_ORCHD_PHASE:-} in
	action | result)
		[ -n "${_ORCHD_SIG:-}" ] || _ORCHD_SIG=$1
		;;
	idle | next) exit 0 ;; # between actions of a session: the session is over
	*)
		case $1 in
		INT) exit 130 ;;
		*) exit 143 ;;
		esac
		;;
	esac
}

_orchd_cleanup() {
	trap '' TERM INT USR1 USR2
	if [ -n "${_ORCHD_RPID:-}" ]; then
		kill -s KILL "$_ORCHD_RPID" 2>/dev/null
		wait "$_ORCHD_RPID" 2>/dev/null
	fi
	if [ -n "${_ORCHD_WPID:-}" ] && kill -s 0 "$_ORCHD_WPID" 2>/dev/null; then
		_orchd_tree "$_ORCHD_WPID" | _orchd_kill TERM
	fi
	[ -n "${_ORCHD_T:-}" ] && rm -rf "$_ORCHD_T"
}

# the reader: reads orchd's lines during an action (and, in a session,
# after its result), hands every one but responses to the main process as
# an event, and stops reading at the first event
_orchd_reader() {
	trap '' TERM INT
	while :; do
		if ! IFS= read -r _or_l; then
			[ -n "$_or_l" ] || {
				_or_ev=eof
				break
			}
		fi
		_or_v=$(_orchd_classify "$_or_l" "$_ORCHD_A/rin")
		case $_or_v in
		empty) continue ;;
		valid:response)
			_or_id=$("$ORCHD_JQ" -r .id "$_ORCHD_A/rin")
			mv "$_ORCHD_A/rin" "$_ORCHD_A/resp.$_or_id"
			continue
			;;
		valid:cancel) _or_ev="cancel $("$ORCHD_JQ" -r .reason "$_ORCHD_A/rin")" ;;
		*) _or_ev="line $_or_v" ;;
		esac
		mv "$_ORCHD_A/rin" "$_ORCHD_A/next"
		break
	done
	printf '%s\n' "$_or_ev" >"$_ORCHD_A/event.tmp" && mv "$_ORCHD_A/event.tmp" "$_ORCHD_A/event"
	# the main process may be about to wait: nag it until it takes the event
	while kill -s USR1 $$ 2>/dev/null; do
		[ -e "$_ORCHD_A/ack" ] && break
		sleep 1
	done
	exit 0
}

# the worker: runs the author's functions for one action (in a subshell:
# nothing carries over to the next action of a session)
_orchd_worker() {
	_ORCHD_IN_WORKER=1
	trap '_orchd_worker_signal' TERM INT
	[ "${_ORCHD_ERREXIT:-0}" = 1 ] && set -e
	case $ORCHD_ACTION in
	plan | apply)
		case " ${ORCHD_VALIDATE_BEFORE-plan apply} " in
		*" $ORCHD_ACTION "*)
			if _orchd_defined orchd_validate; then
				orchd_validate
				_ow_st=$?
				if [ -s "$_ORCHD_A/errors.jsonl" ] || [ $_ow_st != 0 ]; then
					printf '%s\n' "$_ow_st" >"$_ORCHD_A/status"
					printf 'validate' >"$_ORCHD_A/done"
					exit 0
				fi
			fi
			;;
		esac
		;;
	esac
	"orchd_$ORCHD_ACTION"
	printf '%s\n' "$?" >"$_ORCHD_A/status"
	: >"$_ORCHD_A/done"
	exit 0
}

_orchd_worker_signal() {
	trap '' TERM INT
	: >"$_ORCHD_A/cancel"
	if _orchd_defined orchd_on_cancel; then
		orchd_on_cancel
	fi
	exit 143
}

# _orchd_result [cancelled|bad]: the one result of the action
_orchd_result() {
	_or_how=${1:-}
	_or_st=success _or_sum= _or_ch=
	[ -r "$_ORCHD_A/changed" ] && _or_ch=$(cat "$_ORCHD_A/changed")
	[ -r "$_ORCHD_A/summary" ] && _or_sum=$(cat "$_ORCHD_A/summary")
	_or_code=$(cat "$_ORCHD_A/status" 2>/dev/null || printf '%s' "$_ORCHD_WST")
	[ -e "$_ORCHD_A/errors.jsonl" ] || : >"$_ORCHD_A/errors.jsonl"
	_or_first=
	if [ -s "$_ORCHD_A/errors.jsonl" ]; then
		_or_st=failure
		_or_first=$("$ORCHD_JQ" -rs "$_ORCHD_ERR_DEFS"' (.[0] | _text)
			+ (if length > 1 then " (and \(length - 1) more)" else "" end)' "$_ORCHD_A/errors.jsonl")
	fi
	if [ "$_or_how" = cancelled ]; then
		_or_st=failure _or_sum=cancelled
	elif [ "$_or_how" = bad ]; then
		_or_st=failure _or_sum="protocol error: orchd sent an unexpected line"
	elif [ ! -e "$_ORCHD_A/done" ]; then
		_or_st=failure
		[ -n "$_or_sum" ] || [ -n "$_or_first" ] || _or_sum="$ORCHD_ACTION failed (exit status $_or_code)"
	elif [ -e "$_ORCHD_A/failed" ] || [ "$_or_code" != 0 ]; then
		_or_st=failure
	fi
	if [ -z "$_or_sum" ]; then
		if [ -n "$_or_first" ]; then
			_or_sum="invalid configuration: $_or_first"
		elif [ $_or_st = failure ]; then
			_or_sum="$ORCHD_ACTION failed (status $_or_code)"
		elif [ "$ORCHD_ACTION" = validate ]; then
			_or_sum="configuration is valid"
		else
			_or_sum="$ORCHD_ACTION done"
		fi
	fi
	# destroy that succeeded without sending a state: the state is erased (§7.5)
	if [ "$ORCHD_ACTION" = destroy ] && [ $_or_st = success ] && [ ! -e "$_ORCHD_A/state_sent" ]; then
		_orchd_send '{"type":"state","state":null}'
	fi
	_orchd_send "$(printf '%s' "$_or_sum" | "$ORCHD_JQ" -cRs --arg st "$_or_st" --arg ch "$_or_ch" \
		--slurpfile errs "$_ORCHD_A/errors.jsonl" \
		'{type: "result", status: $st}
		 + (if $ch == "" then {} else {changed: ($ch == "true")} end)
		 + {summary: (if length > 150000 then .[0:150000] + " [truncated]" else . end)}
		 + (if $errs == [] then {} else {errors: $errs[0:10000]} end)')"
}

# one action: its message is in $_ORCHD_T/in.  Returns when the process
# goes on with another action (a session), else exits.
_orchd_action() {
	_ORCHD_N=$((${_ORCHD_N:-0} + 1))
	_ORCHD_A=$_ORCHD_T/a$_ORCHD_N
	mkdir "$_ORCHD_A" || exit 1
	ORCHD_MESSAGE_FILE=$_ORCHD_A/message.json
	mv "$_ORCHD_T/in" "$ORCHD_MESSAGE_FILE"
	eval "$("$ORCHD_JQ" -r '@sh "ORCHD_ACTION=\(.action) ORCHD_INSTANCE=\(.instance // "") ORCHD_STACK=\(.stack // "") _ow=\(.workdir // "") _ocf=\(.config_file // "") _osf=\(.state_file // "") _oof=\(.outputs_file // "")"' "$ORCHD_MESSAGE_FILE")"
	[ -n "$_ow" ] && ORCHD_WORKDIR=$_ow
	_ORCHD_PHASE=result
	if [ "$ORCHD_ACTION" = describe ]; then
		_orchd_describe
		_orchd_after_result
		return
	fi
	if ! _orchd_defined "orchd_$ORCHD_ACTION"; then
		_orchd_send "$("$ORCHD_JQ" -cn --arg m "extension $ORCHD_NAME $ORCHD_VERSION does not support action '$ORCHD_ACTION'" \
			'{type: "result", status: "failure", summary: $m}')"
		_orchd_after_result
		return
	fi
	ORCHD_CONFIG_FILE=${_ocf:-$_ORCHD_A/config.json}
	ORCHD_STATE_FILE=${_osf:-$_ORCHD_A/state.json}
	ORCHD_OUTPUTS_FILE=${_oof:-$_ORCHD_A/outputs.json}
	# one compact JSON value a line (no raw newline in compact JSON)
	"$ORCHD_JQ" -c '.config, .state, .outputs' "$ORCHD_MESSAGE_FILE" >"$_ORCHD_A/values"
	[ -n "$_ocf" ] || sed -n 1p "$_ORCHD_A/values" >"$ORCHD_CONFIG_FILE"
	[ -n "$_osf" ] || sed -n 2p "$_ORCHD_A/values" >"$ORCHD_STATE_FILE"
	[ -n "$_oof" ] || sed -n 3p "$_ORCHD_A/values" >"$ORCHD_OUTPUTS_FILE"
	rm -f "$_ORCHD_A/values"
	export ORCHD_ACTION ORCHD_INSTANCE ORCHD_STACK ORCHD_WORKDIR ORCHD_CONFIG_FILE \
		ORCHD_STATE_FILE ORCHD_OUTPUTS_FILE ORCHD_MESSAGE_FILE

	_ORCHD_SIG= _ORCHD_WST=
	_ORCHD_PHASE=action
	_orchd_worker </dev/null 8<&- &
	_ORCHD_WPID=$!
	_orchd_reader <&8 9>&- &
	_ORCHD_RPID=$!
	while [ -z "$_ORCHD_SIG" ] && [ ! -e "$_ORCHD_A/event" ] && [ ! -e "$_ORCHD_T/epipe" ]; do
		wait "$_ORCHD_WPID" 2>/dev/null
		_ORCHD_WST=$?
		kill -s 0 "$_ORCHD_WPID" 2>/dev/null || {
			_ORCHD_WPID=
			break
		}
	done
	_ORCHD_PHASE=result
	if [ -e "$_ORCHD_T/epipe" ]; then
		[ -n "$_ORCHD_WPID" ] && _orchd_stop_worker
		_orchd_say "orchd stopped reading (cannot write on stdout): stopped the action"
		exit 1
	fi
	if [ -n "$_ORCHD_WPID" ]; then
		_orchd_cancel
		exit $?
	fi
	_orchd_result
	_orchd_after_result
}

# cancelled (§9) by a signal, the cancel message, the end of the input
# (orchd is gone) or a line that has no place here: stop the worker, send
# the result; the exit status
_orchd_cancel() {
	_oca_ev=
	[ -e "$_ORCHD_A/event" ] && _oca_ev=$(cat "$_ORCHD_A/event")
	case $_oca_ev in
	cancel*) _oca_why="cancelled by orchd (${_oca_ev#cancel })" ;;
	eof) _oca_why="end of input (orchd is gone): cancelled" ;;
	line*)
		_ORCHD_V=${_oca_ev#line }
		_ORCHD_LINE=$(cat "$_ORCHD_A/next")
		_orchd_bad_input "cancel or response"
		_oca_why="unexpected input from orchd"
		;;
	*) _oca_why="cancelled by SIG$_ORCHD_SIG" ;;
	esac
	: >"$_ORCHD_A/cancel"
	_orchd_stop_worker
	# a line the worker was writing when it was stopped ends here
	_orchd_send ''
	case $_oca_ev in
	line*)
		_orchd_result bad
		return 1
		;;
	esac
	if [ -e "$_ORCHD_A/done" ]; then
		_orchd_result # it had finished: its own result
	else
		_orchd_send "$("$ORCHD_JQ" -cn --arg m "$_oca_why: stopped the action" '{type: "log", level: "warning", message: $m}')"
		_orchd_result cancelled
	fi
	return 0
}

# after the result: exit, or in a session (§7.6) wait for the next action
_orchd_after_result() {
	case " $(_orchd_features) " in
	*" session "*) ;;
	*) exit 0 ;;
	esac
	_ORCHD_PHASE=idle
	if [ -n "${_ORCHD_RPID:-}" ]; then
		# the reader reads the next line
		while [ ! -e "$_ORCHD_A/event" ]; do
			wait "$_ORCHD_RPID" 2>/dev/null
		done
		: >"$_ORCHD_A/ack"
		kill -s KILL "$_ORCHD_RPID" 2>/dev/null
		wait "$_ORCHD_RPID" 2>/dev/null
		_ORCHD_RPID=
		_oar_ev=$(cat "$_ORCHD_A/event")
		case $_oar_ev in
		eof | cancel*) exit 0 ;;
		"line valid:action") mv "$_ORCHD_A/next" "$_ORCHD_T/in" ;;
		*)
			_ORCHD_V=${_oar_ev#line }
			_ORCHD_LINE=$(cat "$_ORCHD_A/next")
			_orchd_bad_input action
			exit 1
			;;
		esac
	else
		_orchd_next_line || exit 0
		case $_ORCHD_V in
		valid:action) ;;
		valid:cancel) exit 0 ;;
		*)
			_orchd_bad_input action
			exit 1
			;;
		esac
	fi
	rm -rf "$_ORCHD_A"
	_ORCHD_A=
	_ORCHD_PHASE=next
}

# stop the worker and everything it started: SIGTERM, then SIGKILL after
# ORCHD_CANCEL_WAIT seconds (default 5)
_orchd_stop_worker() {
	: >"$_ORCHD_A/ack"
	if [ -n "${_ORCHD_RPID:-}" ]; then
		kill -s KILL "$_ORCHD_RPID" 2>/dev/null
		wait "$_ORCHD_RPID" 2>/dev/null
		_ORCHD_RPID=
	fi
	_orchd_tree "$_ORCHD_WPID" >"$_ORCHD_A/pids"
	_orchd_kill TERM <"$_ORCHD_A/pids"
	_ORCHD_TIMEOUT=
	trap '_ORCHD_TIMEOUT=1' USR2
	(
		sleep "${ORCHD_CANCEL_WAIT:-5}"
		kill -s USR2 $$ 2>/dev/null
	) 9>&- 8<&- &
	_osw_timer=$!
	while [ -z "$_ORCHD_TIMEOUT" ]; do
		wait "$_ORCHD_WPID" 2>/dev/null
		kill -s 0 "$_ORCHD_WPID" 2>/dev/null || break
	done
	kill -s TERM "$_osw_timer" 2>/dev/null
	wait "$_osw_timer" 2>/dev/null
	_orchd_tree "$_ORCHD_WPID" >>"$_ORCHD_A/pids"
	_orchd_kill KILL <"$_ORCHD_A/pids"
	wait "$_ORCHD_WPID" 2>/dev/null
	_ORCHD_WPID=
}

# orchd_main "$@": run the extension (call it last)
orchd_main() {
	case $- in *e*) _ORCHD_ERREXIT=1 ;; *) _ORCHD_ERREXIT=0 ;; esac
	set +e
	if [ $# -gt 0 ]; then
		printf 'orchd-ext-%s %s: an orchd extension (protocol %s); orchd starts it, with no arguments\n' \
			"${ORCHD_NAME:-?}" "${ORCHD_VERSION:-?}" "$_ORCHD_PROTO_MAX" >&2
		exit 2
	fi
	case ${ORCHD_NAME:-} in
	'' | [!a-z]* | *[!a-z0-9_-]*)
		_orchd_say "ORCHD_NAME must be set to the extension type ([a-z][a-z0-9_-]*)"
		exit 1
		;;
	esac
	case ${ORCHD_VERSION:-} in
	[0-9]*) ;;
	*)
		_orchd_say "ORCHD_VERSION must be set to a dotted version (0.1.0)"
		exit 1
		;;
	esac
	if ! _orchd_defined orchd_apply; then
		_orchd_say "the extension defines no orchd_apply function (apply is required)"
		exit 1
	fi
	if ! command -v "$ORCHD_JQ" >/dev/null 2>&1; then
		_orchd_say "jq is needed and was not found (ORCHD_JQ=$ORCHD_JQ)"
		exit 1
	fi
	if ! "$ORCHD_JQ" -en --argjson s "${ORCHD_CONFIG_SCHEMA:-{\}}" '$s | type == "object"' >/dev/null 2>&1; then
		_orchd_say "ORCHD_CONFIG_SCHEMA is not a JSON object: describe shows {}"
		ORCHD_CONFIG_SCHEMA='{}'
	fi
	_ORCHD_T=$(_orchd_mktemp) || {
		_orchd_say "cannot create a temporary directory"
		exit 1
	}
	_ORCHD_PHASE=handshake
	trap '_orchd_cleanup' EXIT
	trap '_orchd_on_signal TERM' TERM
	trap '_orchd_on_signal INT' INT
	trap 'exit 1' PIPE
	trap ':' USR1
	# fd 9: protocol output; stdout: stderr, so that nothing else reaches orchd
	exec 9>&1 1>&2 8<&0
	_orchd_handshake
	_orchd_next_line || {
		_orchd_say "end of input before the action"
		exit 1
	}
	case $_ORCHD_V in
	valid:action) ;;
	valid:cancel) exit 0 ;;
	*)
		_orchd_bad_input action
		exit 1
		;;
	esac
	while :; do
		_orchd_action
	done
}
