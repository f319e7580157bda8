from __future__ import annotations

import os
import sys
from typing import Iterator

import pytest

# the SDK of this source tree, whether installed or not
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from extproc import ExtProcess  # noqa: E402


@pytest.fixture
def spawn(tmp_path: "os.PathLike[str]") -> Iterator["object"]:
    procs = []

    def start(path: str, *args: str) -> ExtProcess:
        p = ExtProcess(path, str(tmp_path), list(args))
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()
