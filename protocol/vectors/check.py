#!/usr/bin/env python3
"""Run the protocol conformance vectors against the Python codec.

The codec is orchd_sdk.protocol, the parser of the Python SDK
(protocol/sdk/python: a second, independent implementation of PROTOCOL.md
besides the C library), so both implementations are held to the same
vectors.  The SDK's own tests run them too (tests/test_vectors.py, pytest).

    python3 protocol/vectors/check.py [VECTORS.jsonl ...]

Exit status 0 when every vector gives the expected verdict, 1 otherwise.
Standard library only.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "sdk", "python"))
from orchd_sdk import protocol  # noqa: E402


def raw_line(v):
    if "line" in v:
        return v["line"].encode("utf-8")
    if "line_hex" in v:
        return bytes.fromhex(v["line_hex"])
    g = v["line_gen"]
    pre, suf = g["prefix"].encode(), g["suffix"].encode()
    return pre + g["fill"].encode() * (g["total"] - len(pre) - len(suf)) + suf


def main(argv):
    files = argv[1:] or [os.path.join(HERE, "messages.jsonl")]
    count = failures = 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            for lineno, text in enumerate(f, 1):
                if not text.strip() or text.startswith("#"):
                    continue
                v = json.loads(text)
                got = protocol.verdict(raw_line(v), v["dir"])
                count += 1
                if got != v["expect"]:
                    failures += 1
                    print("%s:%d: expected [%s], got [%s]" % (path, lineno, v["expect"], got))
    print("%d vectors, %d failures" % (count, failures))
    return 1 if failures or not count else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
