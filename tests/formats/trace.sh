#!/bin/sh
# tests/formats/trace.sh - read a file written by `orchd --trace FILE` with
# the trace engine of Chrome DevTools' performance panel, as published on
# npm (@paulirish/trace_engine 0.0.65, BSD-3-Clause, by the Chromium
# authors; installed with npm into
# ${XDG_CACHE_HOME:-$HOME/.cache}/orchd/formats/trace-engine/, its two
# dependencies pinned), then check the rules of the format with
# tests/formats/trace.py.
#
# Usage: sh tests/formats/trace.sh FILE [ID...]
#
# The engine must parse the file and find one process with a thread per
# instance, named by its id; each ID given must be a thread with at least
# one event.  Prints each thread with its events; exit 0 when all hold, 1
# when not, 2 when node or npm are missing or the install fails.
set -eu
ENGINE_VERSION=0.0.65
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/orchd/formats/trace-engine-$ENGINE_VERSION
HERE=$(cd "$(dirname "$0")" && pwd)

die() { echo "trace.sh: $*" >&2; exit 2; }
[ $# -ge 1 ] || die "usage: sh tests/formats/trace.sh FILE [ID...]"
command -v node >/dev/null 2>&1 || die "node not found (Debian: apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm not found (Debian: apt-get install npm)"

if [ ! -f "$CACHE/ok" ]; then
	rm -rf "$CACHE.tmp"
	mkdir -p "$CACHE.tmp"
	cat > "$CACHE.tmp/package.json" <<JSON
{
  "name": "orchd-trace-check",
  "private": true,
  "dependencies": { "@paulirish/trace_engine": "$ENGINE_VERSION" },
  "overrides": { "third-party-web": "0.30.0", "legacy-javascript": "0.0.1" }
}
JSON
	(cd "$CACHE.tmp" && npm install --silent --no-audit --no-fund >&2) ||
		{ rm -rf "$CACHE.tmp"; die "npm could not install @paulirish/trace_engine@$ENGINE_VERSION"; }
	touch "$CACHE.tmp/ok"
	rm -rf "$CACHE"
	mv "$CACHE.tmp" "$CACHE"
fi

cat > "$CACHE/check.mjs" <<'JS'
import {analyzeTrace} from '@paulirish/trace_engine/analyze-trace.mjs';
const [file, ...ids] = process.argv.slice(2);
let parsed;
try {
  parsed = (await analyzeTrace(file)).parsedTrace;
} catch (e) {
  console.log(`FAIL ${file}: the DevTools trace engine could not parse it: ${e}`);
  process.exit(1);
}
const threads = new Map();
for (const [pid, p] of parsed.data.Renderer.processes)
  for (const [tid, t] of p.threads)
    threads.set(t.name, t.entries);
let bad = 0;
for (const [name, entries] of threads)
  console.log(`  ${name}: ${entries.length} events: ${entries.slice(0, 6).map(e => e.name).join(', ')}`);
for (const id of ids) {
  if (!threads.has(id) || threads.get(id).length < 1) {
    console.log(`FAIL ${file}: DevTools found no events for ${id}`);
    bad = 1;
  }
}
if (!bad)
  console.log(`ok   ${file}: DevTools trace engine: ${threads.size} threads`);
process.exit(bad);
JS
file=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
(cd "$CACHE" && node check.mjs "$file" "$@") || exit 1
python3 "$HERE/trace.py" "$file" "$@"
