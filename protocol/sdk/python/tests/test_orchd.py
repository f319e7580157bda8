"""End to end: the real orchd runs the SDK's extensions (no mock of orchd).

Skipped when orchd is not built (/work/main/build/bin/orchd, i.e.
build/bin/orchd of this source tree: run `make` at the top first).
"""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest

from extproc import HERE, SDK

ROOT = os.path.normpath(os.path.join(SDK, "..", "..", ".."))
ORCHD = os.path.join(ROOT, "build", "bin", "orchd")
EXAMPLES = os.path.join(SDK, "examples")
EXTS = os.path.join(HERE, "exts")

pytestmark = pytest.mark.skipif(
    not os.access(ORCHD, os.X_OK),
    reason="orchd is not built (%s missing): run `make` at the top of the tree" % ORCHD)


class Orchd:
    def __init__(self, tmp: str, extdir: str) -> None:
        self.tmp, self.extdir = tmp, extdir
        self.state = os.path.join(tmp, "state")
        self.env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "cache"))
        for k in ("ORCHD_PASSPHRASE", "ORCHD_PASSPHRASE_FILE", "ORCHD_ENV"):
            self.env.pop(k, None)

    def __call__(self, command: str, pipeline: str, *args: str,
                 **env: str) -> "subprocess.CompletedProcess[str]":
        return subprocess.run(
            [ORCHD, "--extensions-dir", self.extdir, command, pipeline,
             "--state-dir", self.state] + list(args),
            capture_output=True, text=True, timeout=120, env=dict(self.env, **env))

    def outputs(self, pipeline: str, *args: str, **env: str) -> Dict[str, Any]:
        r = self("outputs", pipeline, "--json", *args, **env)
        assert r.returncode == 0, r.stdout + r.stderr
        out: Dict[str, Any] = json.loads(r.stdout)
        return out

    def pipeline(self, name: str, text: str) -> str:
        path = os.path.join(self.tmp, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path


def installed(tmp: str, src: str) -> str:
    """The extensions of src laid out as installed: each orchd-ext-* file
    (and manifest) with the SDK package beside it.  Under isolation strict
    an extension sees its own directory, not the source tree around it."""
    ext = os.path.join(tmp, "ext")
    os.makedirs(ext, exist_ok=True)
    for name in os.listdir(src):
        if name.startswith("orchd-ext-"):
            shutil.copy2(os.path.join(src, name), os.path.join(ext, name))
    shutil.copytree(os.path.join(SDK, "orchd_sdk"), os.path.join(ext, "orchd_sdk"),
                    ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    return ext


@pytest.fixture
def orchd(tmp_path: Any) -> Orchd:
    return Orchd(str(tmp_path), installed(str(tmp_path), EXAMPLES))


@pytest.fixture
def probe(tmp_path: Any) -> Orchd:
    return Orchd(str(tmp_path), installed(str(tmp_path), EXTS))


def report(o: Orchd, name: str) -> Dict[str, Any]:
    with open(os.path.join(o.tmp, name), encoding="utf-8") as f:
        return {i["id"]: i for i in json.load(f)["instances"]}


def test_example_pipeline(orchd: Orchd) -> None:
    pipeline = os.path.join(EXAMPLES, "pipeline.yaml")
    r = orchd("run", pipeline, "--report", os.path.join(orchd.tmp, "r1.json"))
    assert r.returncode == 0, r.stdout + r.stderr
    text = r.stdout + r.stderr
    assert "pygreet said: hello, Ada (run 1)" in text
    assert "[pygreet.ada] hello, Ada" in text
    assert orchd.outputs(pipeline) == {
        "pygreet.ada": {"message": "hello, Ada", "runs": 1}, "exec.show": {}}
    assert report(orchd, "r1.json")["pygreet.ada"]["changed"] is True

    # the same config again: no change, but the run counter goes on (state)
    r = orchd("run", pipeline, "--report", os.path.join(orchd.tmp, "r2.json"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pygreet said: hello, Ada (run 2)" in r.stdout + r.stderr
    assert orchd.outputs(pipeline)["pygreet.ada"] == {"message": "hello, Ada", "runs": 2}
    assert report(orchd, "r2.json")["pygreet.ada"]["changed"] is False

    r = orchd("plan", pipeline)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[pygreet.ada] no change" in r.stdout + r.stderr

    r = orchd("destroy", pipeline)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[pygreet.ada] forgot Ada" in r.stdout + r.stderr
    assert "pygreet.ada" not in orchd.outputs(pipeline) or \
        orchd.outputs(pipeline)["pygreet.ada"] == {}


def test_config_errors_reach_the_user_by_line(orchd: Orchd) -> None:
    pipeline = orchd.pipeline("bad.yaml", (
        "greet-bad:\n"
        "  pygreet:\n"
        "    - name: ada\n"
        "      whom: Ada\n"
        "      greeting: 3\n"))
    r = orchd("validate", pipeline)
    assert r.returncode == 2, r.stdout + r.stderr
    text = r.stdout + r.stderr
    assert "bad.yaml:4:7: error: pygreet.ada: unknown key 'whom' (did you mean 'who'?)" in text
    assert "bad.yaml:5:17: error: pygreet.ada: greeting: must be a string" in text
    assert "pygreet.ada: who: is required" in text


def test_timeout_cancels_within_the_grace(probe: Orchd) -> None:
    pipeline = probe.pipeline("slow.yaml", (
        "probe-slow:\n"
        "  sdkprobe:\n"
        "    - name: slow\n"
        "      mode: sleep\n"
        "      execution: {timeout: 2s, grace: 20s}\n"))
    start = time.monotonic()
    r = probe("run", pipeline, "--report", os.path.join(probe.tmp, "r.json"))
    elapsed = time.monotonic() - start
    assert r.returncode == 1, r.stdout + r.stderr
    assert "cleanup after timeout" in r.stdout + r.stderr
    assert elapsed < 10  # the failure result came long before orchd's SIGKILL
    inst = report(probe, "r.json")["sdkprobe.slow"]
    assert inst["status"] == "timed out"


def test_large_values_travel_in_files(probe: Orchd) -> None:
    size = 3 * 1024 * 1024  # more than a protocol line
    pipeline = probe.pipeline("big.yaml", (
        "probe-big:\n"
        "  sdkprobe:\n"
        "    - name: big\n"
        "      mode: big\n"
        "      size: %d\n" % size))
    r = probe("run", pipeline)
    assert r.returncode == 0, r.stdout + r.stderr
    out = probe.outputs(pipeline)["sdkprobe.big"]
    assert out["small"] == size and out["blob"] == "x" * size
    # and the state came back to the next action
    r = probe("run", pipeline)
    assert r.returncode == 0, r.stdout + r.stderr
    assert probe.outputs(pipeline)["sdkprobe.big"]["state_seen"] == {"blob": "x" * size}


def test_secrets_are_masked(probe: Orchd) -> None:
    pipeline = probe.pipeline("secret.yaml", (
        "probe-secret:\n"
        "  sdkprobe:\n"
        "    - name: s\n"
        "      mode: secret\n"))
    r = probe("run", pipeline, ORCHD_PASSPHRASE="correct horse")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "token is ***" in r.stdout + r.stderr
    assert "tok-123" not in r.stdout + r.stderr
    assert probe.outputs(pipeline)["sdkprobe.s"]["token"] == "***"
    shown = probe.outputs(pipeline, "--show-secrets", ORCHD_PASSPHRASE="correct horse")
    assert shown["sdkprobe.s"]["token"] == "tok-123"


@pytest.fixture
def http_dir(tmp_path: Any) -> Iterator[List[str]]:
    root = os.path.join(str(tmp_path), "www")
    os.makedirs(root)
    with open(os.path.join(root, "f.txt"), "wb") as f:
        f.write(b"hello fetch\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, directory=root, **k)

        def log_message(self, *a: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield ["http://127.0.0.1:%d/f.txt" % srv.server_address[1],
           hashlib.sha256(b"hello fetch\n").hexdigest()]
    srv.shutdown()
    srv.server_close()


def test_fetch_request_through_orchd(probe: Orchd, http_dir: List[str]) -> None:
    url, sha = http_dir
    pipeline = probe.pipeline("fetch.yaml", (
        "probe-fetch:\n"
        "  sdkprobe:\n"
        "    - name: f\n"
        "      mode: fetch\n"
        "      source: {url: \"%s\", sha256: \"%s\", dest: got/f.txt}\n"
        "    - name: refused\n"
        "      mode: fetch\n"
        "      source: {git: \"file:///etc\", ref: main}\n" % (url, sha)))
    r = probe("run", pipeline, "--keep-going")
    assert r.returncode == 1, r.stdout + r.stderr  # the refused one fails
    assert ("fetch refused: source not allowed: 'git' must start with http://, https:// "
            "or git://") in r.stdout + r.stderr
    assert probe.outputs(pipeline)["sdkprobe.f"]["fetched"] == {
        "type": "url", "path": "got/f.txt", "sha256": sha}


def test_conformance_runner_passes_the_example(tmp_path: Any) -> None:
    # `orchd ext test`: orchd's own conformance runner (PROTOCOL.md §11)
    if subprocess.run([ORCHD, "ext", "test", "--help"], capture_output=True,
                      timeout=60).returncode != 0:
        pytest.skip("this orchd has no `orchd ext test`")
    r = subprocess.run([ORCHD, "ext", "test", os.path.join(EXAMPLES, "orchd-ext-pygreet")],
                       capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 failed, 0 warnings" in r.stdout, r.stdout
    assert "FAIL" not in r.stdout
