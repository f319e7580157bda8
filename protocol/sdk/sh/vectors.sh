#!/bin/sh
# vectors.sh: the protocol verdict of one raw line, with the sh SDK's parser
# (orchd_verdict of orchd.sh: jq, plus awk, iconv, tr and wc).
#
#   vectors.sh DIR [FILE]     DIR: to_ext (orchd -> extension) or from_ext;
#                             the line is the bytes of FILE (default: stdin),
#                             without its terminating LF.  Prints one of
#                             empty, non-protocol, valid:TYPE, error:TEXT
#   vectors.sh --case JSON    the raw bytes of one case of messages.jsonl
#                             (its line, line_hex or line_gen) on stdout
#
# protocol/vectors/README.md defines the verdicts; tests/run.sh runs every
# case of protocol/vectors/messages.jsonl through this.
set -u

here=$(dirname "$0")
. "$here/orchd.sh"

case ${1:-} in
to_ext | from_ext)
	orchd_verdict "$1" "${2:--}"
	;;
--case)
	case_json=${2:-}
	case $case_json in
	*'"line_hex":'* | *'"line_hex" :'*)
		# hex pairs -> printf octal escapes (POSIX printf: \ddd)
		fmt=$(printf '%s' "$case_json" | "$ORCHD_JQ" -r '.line_hex' | LC_ALL=C awk '{
			h = "0123456789abcdef"; s = tolower($0); out = ""
			for (i = 1; i < length(s); i += 2) {
				v = (index(h, substr(s, i, 1)) - 1) * 16 + index(h, substr(s, i + 1, 1)) - 1
				out = out sprintf("\\%03o", v)
			}
			print out
		}')
		# shellcheck disable=SC2059 # the format is the bytes
		printf "$fmt"
		;;
	*)
		printf '%s' "$case_json" | "$ORCHD_JQ" -j '
			if has("line") then .line
			elif has("line_gen") then .line_gen
				| (.total - (.prefix | utf8bytelength) - (.suffix | utf8bytelength)) as $n
				| .prefix + (if $n > 0 then .fill * $n else "" end) + .suffix
			else error("a case needs line, line_hex or line_gen") end'
		;;
	esac
	;;
*)
	printf 'usage: vectors.sh to_ext|from_ext [FILE]\n       vectors.sh --case CASE-JSON\n' >&2
	exit 2
	;;
esac
