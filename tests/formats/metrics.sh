#!/bin/sh
# tests/formats/metrics.sh - check a file written by `orchd --metrics FILE`
# with the parsers of the Prometheus project's own Python client.
#
# Usage: sh tests/formats/metrics.sh FILE...
#
# Each file is parsed twice, by prometheus_client 0.21.1 (PyPI, Apache-2.0,
# wheel sha256 pinned below, in a venv made under
# ${XDG_CACHE_HOME:-$HOME/.cache}/orchd/formats/):
#  1. prometheus_client.parser.text_string_to_metric_families: the text
#     exposition format 0.0.4, as node_exporter's textfile collector reads
#     it (there "# EOF" is a comment);
#  2. prometheus_client.openmetrics.parser.text_string_to_metric_families:
#     OpenMetrics 1.0, which is stricter (a TYPE before the samples of a
#     family, no family twice, "# EOF" last).
# Prints every family with its type and number of samples; exit 1 when a
# file does not parse, 2 when the parser cannot be set up.

set -eu

PC_VERSION=0.21.1
PC_WHEEL_SHA256=594b45c410d6f4f8888940fe80b5cc2521b305a1fafe1c58609ef715a001f301
PYTHON=${PYTHON:-python3}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/orchd/formats
VENV=$CACHE/venv-prometheus-client-$PC_VERSION

die() {
	echo "metrics.sh: $*" >&2
	exit 2
}

[ $# -gt 0 ] || die "usage: sh tests/formats/metrics.sh FILE..."
. "$(dirname "$0")/venv.sh"
pinned_venv "$VENV" prometheus_client "$PC_VERSION" "$PC_WHEEL_SHA256"

exec "$VENV/bin/python" - "$@" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families as prom
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om

status = 0
for path in sys.argv[1:]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        print(f"FAIL {path}: {e}")
        status = 1
        continue
    for name, parse in (("prometheus text 0.0.4", prom), ("openmetrics 1.0", om)):
        try:
            families = list(parse(text))
        except Exception as e:  # the parsers raise ValueError and others
            print(f"FAIL {path}: {name}: {type(e).__name__}: {e}")
            status = 1
            continue
        print(f"ok   {path}: {name}: {len(families)} families")
        if name.startswith("openmetrics"):
            for fam in families:
                print(f"  {fam.name} {fam.type} {len(fam.samples)} samples")
                for s in fam.samples:
                    labels = ",".join(f"{k}={v!r}" for k, v in sorted(s.labels.items()))
                    print(f"    {s.name}{{{labels}}} {s.value}")
sys.exit(status)
PY
