"""Every case of the shared conformance vectors through the SDK's parser.

The vectors live in protocol/vectors/messages.jsonl (three levels up from
this directory); each gives a direction, a raw line and the verdict string
of protocol/vectors/README.md.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List

import pytest

from orchd_sdk import protocol

VECTORS = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "vectors",
                 "messages.jsonl"))


def load_cases() -> List[Any]:
    cases = []
    with open(VECTORS, encoding="utf-8") as f:
        for lineno, text in enumerate(f, 1):
            if not text.strip() or text.startswith("#"):
                continue
            case: Dict[str, Any] = json.loads(text)
            note = case.get("note") or case["expect"]
            cases.append(pytest.param(case, id="%d:%s" % (lineno, note[:50])))
    return cases


def raw_line(case: Dict[str, Any]) -> bytes:
    if "line" in case:
        line: str = case["line"]
        return line.encode("utf-8")
    if "line_hex" in case:
        return bytes.fromhex(str(case["line_hex"]))
    gen: Dict[str, Any] = case["line_gen"]
    pre, suf = str(gen["prefix"]).encode(), str(gen["suffix"]).encode()
    total: int = gen["total"]
    return pre + str(gen["fill"]).encode() * (total - len(pre) - len(suf)) + suf


CASES = load_cases()


def test_vectors_found() -> None:
    # a wrong path must not pass as "no case failed"
    assert len(CASES) > 150


@pytest.mark.parametrize("case", CASES)
def test_vector(case: Dict[str, Any]) -> None:
    assert protocol.verdict(raw_line(case), case["dir"]) == case["expect"]


def test_both_directions_covered() -> None:
    dirs = {p.values[0]["dir"] for p in CASES}
    assert dirs == {protocol.TO_EXT, protocol.FROM_EXT}
