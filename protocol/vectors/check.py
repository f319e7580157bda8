#!/usr/bin/env python3
"""Run the protocol conformance vectors against the Python codec.

The codec is the one inside examples/extensions/python/orchd-ext-pydemo
(a second, independent implementation of PROTOCOL.md besides the C library),
so both implementations are held to the same vectors.

    python3 protocol/vectors/check.py [VECTORS.jsonl ...]

Exit status 0 when every vector gives the expected verdict, 1 otherwise.
Standard library only.
"""
import importlib.machinery
import importlib.util
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
CODEC = os.path.join(SRC, "examples", "extensions", "python", "orchd-ext-pydemo")


def load_codec(path=CODEC):
    loader = importlib.machinery.SourceFileLoader("orchd_pydemo", path)
    spec = importlib.util.spec_from_loader("orchd_pydemo", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def raw_line(v):
    if "line" in v:
        return v["line"].encode("utf-8")
    if "line_hex" in v:
        return bytes.fromhex(v["line_hex"])
    g = v["line_gen"]
    pre, suf = g["prefix"].encode(), g["suffix"].encode()
    return pre + g["fill"].encode() * (g["total"] - len(pre) - len(suf)) + suf


def verdict_text(verdict, value):
    if verdict == "valid":
        return "valid:" + value[0]
    if verdict == "error":
        return "error:" + value
    return verdict


def main(argv):
    codec = load_codec()
    files = argv[1:] or [os.path.join(HERE, "messages.jsonl")]
    count = failures = 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            for lineno, text in enumerate(f, 1):
                if not text.strip() or text.startswith("#"):
                    continue
                v = json.loads(text)
                direction = codec.TO_EXT if v["dir"] == "to_ext" else codec.FROM_EXT
                got = verdict_text(*codec.parse_line(direction, raw_line(v)))
                count += 1
                if got != v["expect"]:
                    failures += 1
                    print("%s:%d: expected [%s], got [%s]" % (path, lineno, v["expect"], got))
    print("%d vectors, %d failures" % (count, failures))
    return 1 if failures or not count else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
