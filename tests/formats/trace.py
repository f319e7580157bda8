#!/usr/bin/env python3
"""tests/formats/trace.py - check a file written by `orchd --trace FILE`
against the rules of the Trace Event Format (the JSON object form that
chrome://tracing and Perfetto's legacy JSON importer read).

Usage: python3 tests/formats/trace.py FILE [ID...]

Checks: the top level is an object with a "traceEvents" array; every event
is an object with a string "ph"; a complete event ("X") has a string name
and cat, numeric ts and dur (microseconds, not negative) and integer pid
and tid; a metadata event ("M") is process_name, thread_name or
thread_sort_index with its args; complete events on one thread do not
overlap unless one nests inside the other (the viewers drop or misdraw
those); every thread that has events is named.  With IDs: each is the
name of a thread that has at least one "X" event.  Prints a summary; exit 1
on the first violation (no parser of this format is packaged on PyPI
without a binary downloaded from elsewhere, so these rules are checked
here, from the format's public description).
"""
import json
import sys


def fail(msg):
    print(f"FAIL {sys.argv[1]}: {msg}")
    sys.exit(1)


def main():
    if len(sys.argv) < 2:
        print("usage: trace.py FILE [ID...]", file=sys.stderr)
        sys.exit(2)
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        fail("no traceEvents array at the top level")
    names = {}
    spans = {}
    for i, ev in enumerate(doc["traceEvents"]):
        if not isinstance(ev, dict) or not isinstance(ev.get("ph"), str):
            fail(f"event {i}: not an object with a ph")
        ph = ev["ph"]
        if ph == "X":
            for key, typ in (("name", str), ("cat", str), ("pid", int), ("tid", int)):
                if not isinstance(ev.get(key), typ) or isinstance(ev.get(key), bool):
                    fail(f"event {i}: {key} missing or not {typ.__name__}")
            for key in ("ts", "dur"):
                v = ev.get(key)
                if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                    fail(f"event {i}: {key} missing, not a number or negative")
            if "args" in ev and not isinstance(ev["args"], dict):
                fail(f"event {i}: args is not an object")
            spans.setdefault((ev["pid"], ev["tid"]), []).append((ev["ts"], ev["ts"] + ev["dur"], ev["name"]))
        elif ph == "M":
            if ev.get("name") not in ("process_name", "thread_name", "thread_sort_index"):
                fail(f"event {i}: unknown metadata {ev.get('name')!r}")
            if not isinstance(ev.get("args"), dict):
                fail(f"event {i}: metadata without args")
            if ev["name"] == "thread_name":
                if not isinstance(ev["args"].get("name"), str):
                    fail(f"event {i}: thread_name without a name")
                names[(ev.get("pid"), ev.get("tid"))] = ev["args"]["name"]
        else:
            fail(f"event {i}: unexpected phase {ph!r}")
    for key, evs in spans.items():
        if key not in names:
            fail(f"thread {key} has events but no thread_name")
        evs.sort(key=lambda e: (e[0], -e[1]))
        open_ = []
        for start, end, name in evs:
            while open_ and open_[-1][1] <= start:
                open_.pop()
            if open_ and end > open_[-1][1]:
                fail(f"{names[key]}: {name!r} [{start}, {end}) overlaps "
                     f"{open_[-1][2]!r} [{open_[-1][0]}, {open_[-1][1]}) without nesting")
            open_.append((start, end, name))
    with_events = {names[k] for k in spans}
    for want in sys.argv[2:]:
        if want not in with_events:
            fail(f"no events for {want!r}")
    total = sum(len(v) for v in spans.values())
    print(f"ok   {sys.argv[1]}: {total} complete events on {len(spans)} threads")


main()
