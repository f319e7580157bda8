"""Drive an extension executable as orchd does: a real process, real pipes.

Every line the extension writes on stdout is checked with the SDK's parser
(a conforming extension writes nothing else: PROTOCOL.md §4, §11).
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional

from orchd_sdk import protocol

HERE = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.dirname(HERE)
PYGREET = os.path.join(SDK, "examples", "orchd-ext-pygreet")
PROBE = os.path.join(HERE, "exts", "orchd-ext-sdkprobe")

Message = Dict[str, Any]
ORCHD_HELLO: Message = {"type": "hello", "protocol": {"min": 1, "max": 1},
                        "orchd_version": "0.1.0"}


class ExtProcess:
    def __init__(self, path: str, workdir: str, args: Optional[List[str]] = None) -> None:
        self.workdir = workdir
        env = dict(os.environ, ORCHD_WORKDIR=workdir, ORCHD_PROTOCOL="1",
                   ORCHD_INSTANCE="t")
        env.pop("PYTHONPATH", None)  # the examples find the SDK on their own
        self.proc = subprocess.Popen([path] + (args or []), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=workdir, env=env, start_new_session=True)
        self.lines: "queue.Queue[Optional[bytes]]" = queue.Queue()
        self.stderr_chunks: List[bytes] = []
        self.invalid: List[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for chunk in iter(lambda: self.proc.stderr.read1(65536), b""):  # type: ignore
            self.stderr_chunks.append(chunk)

    @property
    def stderr(self) -> str:
        return b"".join(self.stderr_chunks).decode("utf-8", "replace")

    # -- orchd -> extension --------------------------------------------

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, msg: Message) -> None:
        self.send_raw(protocol.encode(msg, protocol.TO_EXT))

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def hello(self, lo: int = 1, hi: int = 1) -> Message:
        self.send(dict(ORCHD_HELLO, protocol={"min": lo, "max": hi}))
        return self.expect("hello")

    def action(self, action: str, config: Optional[Message] = None, state: Any = None,
               outputs: Optional[Message] = None, **extra: Any) -> None:
        msg: Message = {"type": "action", "action": action}
        if action != "describe":
            msg.update(instance="t", stack="dev-sdk-t", config=config or {}, state=state,
                       outputs=outputs or {}, workdir=self.workdir)
        msg.update(extra)
        for k in ("config", "state", "outputs"):
            if k + "_file" in extra:
                msg.pop(k, None)
        self.send(msg)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    # -- extension -> orchd --------------------------------------------

    def read(self, timeout: float = 10.0) -> Optional[Message]:
        """The next message; None at the end of its stdout."""
        raw = self.lines.get(timeout=timeout)
        if raw is None:
            self.lines.put(None)
            return None
        parsed = protocol.parse_line(raw.rstrip(b"\n"), protocol.FROM_EXT)
        if parsed.kind != "valid":
            self.invalid.append("%s: %r" % (parsed.verdict, raw[:200]))
        assert parsed.kind == "valid", "stdout line is not a valid message: %s %r" % (
            parsed.verdict, raw[:200])
        assert parsed.message is not None
        return parsed.message

    def expect(self, mtype: str, timeout: float = 10.0) -> Message:
        msg = self.read(timeout)
        assert msg is not None, "stdout closed, expected %s (stderr: %s)" % (mtype, self.stderr)
        assert msg["type"] == mtype, "expected %s, got %s" % (mtype, json.dumps(msg))
        return msg

    def until_result(self, timeout: float = 10.0) -> List[Message]:
        """Every message up to the result (the last one)."""
        out: List[Message] = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.read(max(0.1, deadline - time.monotonic()))
            assert msg is not None, "stdout closed before the result (stderr: %s)" % self.stderr
            out.append(msg)
            if msg["type"] == "result":
                return out

    def wait(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout)

    def finish(self, timeout: float = 10.0) -> int:
        """Close stdin (as orchd does after a result) and the exit status."""
        self.close_stdin()
        status = self.wait(timeout)
        assert self.read(timeout) is None, "more on stdout after the result"
        return status

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def of_type(msgs: List[Message], mtype: str) -> List[Message]:
    return [m for m in msgs if m["type"] == mtype]


def outputs(msgs: List[Message]) -> Dict[str, Any]:
    return {m["key"]: m.get("value") for m in of_type(msgs, "output")}
