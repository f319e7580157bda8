"""The extension side of the protocol: the handshake, the action loop, the context.

An extension subclasses :class:`Extension`, declares itself in class
attributes and implements ``apply`` (and any of ``validate``, ``plan``,
``destroy``); ``Extension.main()`` runs it.  Everything PROTOCOL.md asks
of the process is done here: the hello and the version negotiation (§5),
one JSON line per message and nothing else on stdout (§4), values in
files when they do not fit in a line (§4.1), requests (§6.3), sessions
(§7.6), exit status (§8), and cancellation by message, signal or end of
input (§9).
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import re
import signal
import sys
import threading
import traceback
from types import FrameType
from typing import Any, ClassVar, Dict, List, NoReturn, Optional, Sequence, Tuple, cast

from . import protocol as proto
from .config import ConfigErrors, PathLike, Schema, check_schema, join_path, with_defaults
from .protocol import MAX_DEPTH, MAX_FILE_VALUE, MAX_LINE, TO_EXT, Message

Config = Dict[str, Any]

_NAME = re.compile(r"[a-z][a-z0-9_-]*\Z")


# --------------------------------------------------------------------------
# what handlers return or raise
# --------------------------------------------------------------------------

class Result:
    """The end of an action: ``success``, ``changed`` (None: unknown), ``summary``."""

    __slots__ = ("changed", "summary", "success")

    def __init__(self, changed: Optional[bool] = None, summary: Optional[str] = None,
                 success: bool = True) -> None:
        self.changed, self.summary, self.success = changed, summary, success

    def __repr__(self) -> str:
        return "Result(changed=%r, summary=%r, success=%r)" % (
            self.changed, self.summary, self.success)


class Failure(Exception):
    """Raise to end the action with a ``failure`` result.

    retryable: also send an ``error`` message marking it transient (§6.2).
    changed: whether something was changed before it failed (None: unknown).
    """

    def __init__(self, summary: str, *, changed: Optional[bool] = None,
                 retryable: bool = False) -> None:
        super().__init__(summary)
        self.summary, self.changed, self.retryable = summary, changed, retryable


class ConfigError(Exception):
    """Raise to fail the action with one configuration error at path."""

    def __init__(self, path: PathLike, message: str) -> None:
        super().__init__("%s: %s" % (join_path(path), message))
        self.path, self.message = join_path(path), message


class Cancelled(BaseException):
    """Raised in the action's handler when orchd cancels it (§9).

    A BaseException, like KeyboardInterrupt, so that ``except Exception``
    does not swallow it: clean up in ``finally`` (or catch it, clean up and
    re-raise).  The SDK answers with a failure result ``cancelled``.
    """


class RequestFailed(Exception):
    """orchd answered a request with ``ok: false``; ``error`` is its text (§6.3)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class _Exit(BaseException):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


# --------------------------------------------------------------------------
# the context of one action
# --------------------------------------------------------------------------

class Context:
    """What a handler gets besides its config: the action, the previous
    state and outputs, and the ways to talk to orchd."""

    def __init__(self, runtime: "_Runtime", act: "_Action", config: Config) -> None:
        self._rt, self._act = runtime, act
        message = cast(Message, act.message)
        self.message = message  # the action message as received
        self.action: str = message["action"]
        self.instance: str = message.get("instance", "")
        self.stack: str = message.get("stack", "")
        self.workdir: str = message.get("workdir", "")
        self.config = config  # with the schema's defaults
        self.state: Any = message.get("state")  # the previous state (None: none)
        self.outputs: Dict[str, Any] = message.get("outputs") or {}  # the previous outputs
        self.errors = ConfigErrors()  # validate adds here
        self.state_sent = False

    # -- messages ----------------------------------------------------------

    def log(self, level: str, message: str) -> None:
        """A log line at level ``debug``, ``info``, ``warning`` or ``error``."""
        if level not in proto.LEVELS:
            raise ValueError("log level must be one of debug, info, warning, error")
        self._rt.send(self._act, {"type": "log", "level": level, "message": _fit(str(message))})

    def debug(self, message: str) -> None:
        self.log("debug", message)

    def info(self, message: str) -> None:
        self.log("info", message)

    def warning(self, message: str) -> None:
        self.log("warning", message)

    def error(self, message: str) -> None:
        self.log("error", message)

    def progress(self, message: str, percent: Optional[float] = None) -> None:
        """What is happening; percent from 0 to 100."""
        msg: Message = {"type": "progress", "message": _fit(str(message))}
        if percent is not None:
            msg["percent"] = percent
        self._rt.send(self._act, msg)

    def output(self, key: str, value: Any, *, secret: bool = False) -> None:
        """An output (kept when apply succeeds); secret: stored encrypted, never printed."""
        self._rt.send_value(self._act, {"type": "output", "key": key, "secret": secret},
                            "value", value)

    def set_state(self, state: Any, *, secret: bool = False) -> None:
        """The new state (sent at once: it is kept even if apply fails later).
        None erases it; secret: it may hold secrets, stored encrypted."""
        msg: Message = {"type": "state"}
        if secret:
            msg["secret"] = True
        self._rt.send_value(self._act, msg, "state", state)
        self.state_sent = True

    def mask(self, value: str) -> None:
        """Have orchd print value as ``***`` from now on (before printing it)."""
        self._rt.send(self._act, {"type": "mask", "value": value})

    # -- requests (§6.3) ---------------------------------------------------

    def request(self, op: str, **fields: Any) -> Dict[str, Any]:
        """Send a request and wait for its response: its ``result`` object, or
        RequestFailed with orchd's error text.  Cancelled if the action is."""
        return self._rt.request(self._act, op, fields)

    def fetch(self, source: Dict[str, Any]) -> Dict[str, Any]:
        """Fetch a source (``{"git","ref","path"}`` or ``{"url","sha256","dest"}``)
        into the workdir; returns ``{"type","path","commit"|"sha256"}``."""
        return self.request("fetch", source=source)

    # -- cancellation (§9) -------------------------------------------------

    @property
    def cancelled(self) -> bool:
        return self._act.cancel_reason is not None

    @property
    def cancel_reason(self) -> Optional[str]:
        """``interrupted`` or ``timeout`` (orchd's cancel), ``eof`` (orchd is gone),
        ``stdout closed``, ``protocol error: ...``; None: not cancelled."""
        return self._rt.reason(self._act)

    def check_cancelled(self) -> None:
        """Raise Cancelled if the action was cancelled (for loops in threads)."""
        if self.cancelled:
            raise Cancelled(self.cancel_reason)


def _fit(text: str) -> str:
    # a line holds 1 MiB; a character takes at most 6 bytes (\u escape)
    limit = MAX_LINE // 8
    return text if len(text) <= limit else text[:limit] + "... (cut)"


# --------------------------------------------------------------------------
# the base class
# --------------------------------------------------------------------------

class Extension:
    """Subclass it, declare, implement ``apply`` (and optionally the others).

    ``name`` is the type (the executable is ``orchd-ext-NAME``);
    ``config_schema`` (the JSON Schema subset of §7.1) is shown by describe
    and checked before every action, defaults filled in.  Each handler gets
    ``(config, ctx)`` and returns a :class:`Result` or None, or raises
    :class:`Failure`, :class:`ConfigError` (or anything: a failure too).
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[Optional[str]] = None
    min_orchd_version: ClassVar[Optional[str]] = None
    protocol: ClassVar[Tuple[int, int]] = (proto.PROTOCOL_MIN, proto.PROTOCOL_MAX)
    features: ClassVar[Sequence[str]] = ("files", "session")
    config_schema: ClassVar[Optional[Schema]] = None
    manifest_extra: ClassVar[Dict[str, Any]] = {}  # secrets, isolation, tools, ...

    def validate(self, config: Config, ctx: Context) -> None:
        """Checks beyond the schema: add to ``ctx.errors`` (runs when the
        schema check passed, before every action but describe)."""

    def plan(self, config: Config, ctx: Context) -> Optional[Result]:
        """What apply would do (``changed``), without doing it."""
        raise NotImplementedError

    def apply(self, config: Config, ctx: Context) -> Optional[Result]:
        """Make the world match config; send outputs and the new state."""
        raise NotImplementedError

    def destroy(self, config: Config, ctx: Context) -> Optional[Result]:
        """Remove what apply created (``ctx.state``); the SDK then sends state null."""
        raise NotImplementedError

    # -- declaration -------------------------------------------------------

    @classmethod
    def _implements(cls, action: str) -> bool:
        return getattr(cls, action) is not getattr(Extension, action)

    @classmethod
    def actions(cls) -> List[str]:
        """The actions the hello lists: describe, validate when there is a
        schema or a validate, and the handlers implemented."""
        out = ["describe"]
        if cls.config_schema is not None or cls._implements("validate"):
            out.append("validate")
        return out + [a for a in ("plan", "apply", "destroy") if cls._implements(a)]

    @classmethod
    def manifest(cls) -> Dict[str, Any]:
        """The manifest (§2.3) of this declaration."""
        m: Dict[str, Any] = {"name": cls.name, "version": cls.version,
                             "protocol": {"min": cls.protocol[0], "max": cls.protocol[1]}}
        if cls.min_orchd_version:
            m["min_orchd_version"] = cls.min_orchd_version
        if cls.description:
            m["description"] = cls.description
        m.update(cls.manifest_extra)
        return m

    @classmethod
    def check_declaration(cls) -> None:
        """TypeError for a declaration the protocol cannot carry."""
        if not isinstance(cls.name, str) or not _NAME.match(cls.name):
            raise TypeError("%s.name must match [a-z][a-z0-9_-]*" % cls.__name__)
        for what in ("version", "min_orchd_version"):
            v = getattr(cls, what)
            if (v is not None or what == "version") and not proto.version_valid(v):
                raise TypeError("%s.%s must be a dotted version" % (cls.__name__, what))
        lo, hi = cls.protocol
        if not (proto.PROTOCOL_MIN <= lo <= hi <= proto.PROTOCOL_MAX):
            raise TypeError("%s.protocol must be within %d..%d (what this SDK speaks)"
                            % (cls.__name__, proto.PROTOCOL_MIN, proto.PROTOCOL_MAX))
        if not cls._implements("apply"):
            raise TypeError("%s must implement apply" % cls.__name__)

    @classmethod
    def main(cls, argv: Optional[Sequence[str]] = None) -> NoReturn:
        """Run as the extension process and exit with its status."""
        sys.exit(run(cls(), argv))


# --------------------------------------------------------------------------
# the process
# --------------------------------------------------------------------------

_EOF = ("eof",)
# phases of the process, as the signal handler and the reader see them
_HANDSHAKE, _WAITING, _ACTION = "handshake", "waiting", "action"


class _Action:
    """What belongs to one action (a session runs several, §7.6)."""

    def __init__(self, message: Optional[Message] = None) -> None:
        self.message = message
        self.workdir = (message or {}).get("workdir") or "."
        self.cancel_reason: Optional[str] = None
        self.by_signal = False  # cancel_reason is a signal's guess, a message may tell
        self.armed = False  # the handler runs: a cancel raises Cancelled in it
        self.raised = False  # Cancelled was raised (once)
        self.pending = False  # to raise once the line being written is out
        self.result_sent = False
        self.responses: Dict[int, Message] = {}


class _LogHandler(logging.Handler):
    """Python logging -> log messages of the running action (stderr otherwise)."""

    def __init__(self, runtime: "_Runtime") -> None:
        super().__init__()
        self.rt = runtime

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            n = record.levelno
            level = ("debug" if n < logging.INFO else "info" if n < logging.WARNING
                     else "warning" if n < logging.ERROR else "error")
            act = self.rt.current
            if act.message is None or not self.rt.send(
                    act, {"type": "log", "level": level, "message": _fit(text)}):
                sys.stderr.write(text + "\n")
        except Exception:  # noqa: BLE001 - logging must not raise
            self.handleError(record)


class _Runtime:
    """The process: a reader thread parses stdin; the main thread runs the
    handshake and the actions; signals and cancels reach it as Cancelled."""

    def __init__(self, ext: Extension, in_fd: int, out_fd: int) -> None:
        self.ext, self.in_fd, self.out_fd = ext, in_fd, out_fd
        self.name = ext.name
        self.inbox: "queue.Queue[Tuple[Any, ...]]" = queue.Queue()
        self.wlock = threading.Lock()  # one line at a time on stdout
        self.cond = threading.Condition()  # phase, current, responses
        self.main_ident = threading.main_thread().ident
        self.phase = _HANDSHAKE
        self.current = _Action()  # the action running, or the last one
        self.actions_done = 0
        self.critical = 0  # the main thread writes a line: Cancelled waits
        self.idle = False  # the main thread waits for a message
        self.stop = False  # no further action: exit after this one
        self.gone = False  # stdout is closed: orchd stopped listening
        self.nfiles = 0
        self.ids = itertools.count()

    # -- output ------------------------------------------------------------

    def complain(self, text: str) -> None:
        sys.stderr.write("%s: %s\n" % (self.name, text))
        sys.stderr.flush()

    def write(self, line: bytes, act: Optional[_Action] = None, result: bool = False) -> bool:
        """One whole line on stdout; False when it was not written (act's result
        was sent already, or orchd stopped listening)."""
        in_main = threading.get_ident() == self.main_ident
        with self.wlock:
            if self.gone or (act is not None and act.result_sent):
                return False
            if in_main:
                self.critical += 1
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(self.out_fd, view):]
            except OSError:  # EPIPE (SIGPIPE is ignored): orchd is gone (§9.5)
                self.gone = True
            finally:
                if in_main:
                    self.critical -= 1
                if act is not None and result:
                    act.result_sent = True
        if self.gone:
            if act is not None:
                self.cancel(act, "stdout closed")
            return False
        if in_main and act is not None and act.pending and act.armed and not act.raised:
            act.raised = True
            raise Cancelled(act.cancel_reason)
        return True

    def send(self, act: _Action, msg: Message) -> bool:
        """A message of action act (nothing after its result: False)."""
        return self.write(proto.encode(msg), act)

    def send_value(self, act: _Action, msg: Message, field: str, value: Any) -> None:
        """A state or output message; its value in a file of the workdir when
        the line would be too long (§4.1)."""
        try:
            self.send(act, dict(msg, **{field: value}))
            return
        except proto.LineTooLong:
            pass
        text = proto.dumps(value)
        size = len(text.encode("utf-8"))
        if size > MAX_FILE_VALUE:
            raise ValueError("%s is larger than the protocol carries (%d bytes, at most %d)"
                             % (msg["type"], size, MAX_FILE_VALUE))
        if proto.nested_deeper(text, MAX_DEPTH):
            raise ValueError("%s value nested deeper than %d levels" % (msg["type"], MAX_DEPTH))
        if proto.value_count(text) > 1000000:
            raise ValueError("%s value holds more than 1000000 JSON values" % msg["type"])
        self.nfiles += 1
        name = ".orchd-sdk-value-%d.json" % self.nfiles
        with open(os.path.join(act.workdir, name), "w", encoding="utf-8") as f:
            f.write(text)
        self.send(act, dict(msg, file=name))

    # -- input -------------------------------------------------------------

    def reader(self) -> None:
        """The stdin thread: lines are parsed here; a cancel or a response
        is acted on at once, the rest queued for the main thread."""
        buf, scanned = bytearray(), 0
        while True:
            nl = buf.find(b"\n", scanned)
            if nl < 0:
                scanned = len(buf)
                if len(buf) > MAX_LINE:
                    return self.incoming(("bad", "line exceeds %d bytes" % MAX_LINE))
                try:
                    chunk = os.read(self.in_fd, 65536)
                except OSError as e:
                    chunk = b""
                    self.complain("cannot read stdin: %s" % e.strerror)
                if chunk:
                    buf += chunk
                    continue
                if buf and not self.line(bytes(buf)):  # a last line without "\n"
                    return
                return self.incoming(_EOF)
            line = bytes(buf[:nl])
            del buf[:nl + 1]
            scanned = 0
            if not self.line(line):
                return

    def line(self, raw: bytes) -> bool:
        parsed = proto.parse_line(raw, TO_EXT)
        if parsed.kind == "empty":
            return True
        if parsed.kind != "valid":
            self.incoming(("bad", parsed.error or "input is not a JSON object"))
            return False
        self.incoming(("msg", parsed.type, parsed.message))
        return True

    def incoming(self, item: Tuple[Any, ...]) -> None:
        with self.cond:
            kind = item[0]
            mtype = item[1] if kind == "msg" else None
            if self.phase == _ACTION:
                act = self.current
                if mtype == "cancel":
                    reason = item[2]["reason"]  # unknown reasons are "interrupted" (§6.1)
                    reason = reason if reason == "timeout" else "interrupted"
                    if act.by_signal:  # the signal came first: the message says why
                        act.cancel_reason, act.by_signal = reason, False
                    self.cancel(act, reason)
                    return
                if mtype == "response":
                    act.responses[item[2]["id"]] = item[2]
                    self.cond.notify_all()
                    return
                if kind == "msg":
                    item = ("bad", "expected cancel or response, got %s" % mtype)
                if item[0] == "bad":
                    self.complain("protocol error: %s" % item[1])
                    self.cancel(act, "protocol error: %s" % item[1])
                else:
                    act.by_signal = False  # no message will tell more
                    self.cancel(act, "eof")  # §9.4: orchd is gone
            elif mtype == "action":  # (after the hello: the main thread checks)
                self.current = _Action(item[2])
                self.phase = _ACTION
                item = item + (self.current,)
            elif mtype == "response" and self.actions_done:
                return  # the late answer to a request of the previous action
            self.inbox.put(item)

    def cancel(self, act: _Action, reason: str) -> None:
        """Cancel action act (from any thread)."""
        with self.cond:
            if act.cancel_reason is None:
                act.cancel_reason = reason
            self.stop = True  # a cancelled action ends the session
            self.cond.notify_all()
            wake = act is self.current and act.armed and not act.raised
        if wake and threading.get_ident() != self.main_ident:
            # a cancel message, or orchd gone: as orchd's SIGTERM would (§9.1),
            # to the commands of our process group (when it is ours) ...
            if os.getpgrp() == os.getpid():
                try:
                    os.killpg(os.getpgrp(), signal.SIGTERM)
                except OSError:
                    pass
            # ... and into the main thread, where the handler runs (it wakes
            # a blocking call there, which a signal to the process may not)
            signal.pthread_kill(cast(int, self.main_ident), signal.SIGTERM)

    def reason(self, act: _Action) -> Optional[str]:
        """Why act was cancelled.  orchd sends its cancel message and then
        SIGTERM, which may overtake it: after a signal, the message's reason
        is waited for a moment."""
        if act.by_signal:
            with self.cond:
                self.cond.wait_for(lambda: not act.by_signal, timeout=0.2)
        return act.cancel_reason

    def on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        """SIGTERM or SIGINT (§9): Cancelled in the running handler."""
        self.stop = True
        act = self.current
        if self.phase != _ACTION:
            # before the action (§9.3: only a signal, no cancel), or between
            # two actions of a session: the end
            if self.idle:
                raise _Exit(self.end_status())
            return
        if act.cancel_reason is None:
            act.cancel_reason, act.by_signal = "interrupted", True
        if act.armed and not act.raised:
            if self.critical:
                act.pending = True
            else:
                act.raised = True
                raise Cancelled(act.cancel_reason)

    def request(self, act: _Action, op: str, fields: Dict[str, Any]) -> Dict[str, Any]:
        rid = next(self.ids)
        if act.cancel_reason is not None:
            raise Cancelled(act.cancel_reason)
        if not self.send(act, dict({"type": "request", "id": rid, "op": op}, **fields)):
            raise RuntimeError("the request cannot be sent after the action's result")
        with self.cond:
            while rid not in act.responses:
                if act.cancel_reason is not None:
                    raise Cancelled(act.cancel_reason)
                self.cond.wait()
            resp = act.responses.pop(rid)
        if not resp["ok"]:
            raise RequestFailed(resp["error"])
        return cast(Dict[str, Any], resp["result"])

    # -- the main loop -----------------------------------------------------

    def end_status(self) -> int:
        if not self.actions_done:
            self.complain("cancelled before the action")
            return 1
        return 0

    def next_item(self) -> Tuple[Any, ...]:
        """The next message for the main thread (blocking; a signal meanwhile ends it)."""
        if self.stop and self.phase != _ACTION:
            raise _Exit(self.end_status())
        self.idle = True
        try:
            return self.inbox.get()
        finally:
            self.idle = False

    def serve(self) -> int:
        kind, *rest = self.next_item()
        if kind != "msg" or rest[0] != "hello":
            self.complain("protocol error: %s" % (
                "end of input before hello" if kind == "eof" else rest[0] if kind == "bad"
                else "expected hello, got %s" % rest[0]))
            return 1
        offer = rest[1]["protocol"]
        version = proto.negotiate(self.ext.protocol, (offer["min"], offer["max"]))
        if version is None:
            text = "extension %s speaks protocol %d..%d, orchd offers %d..%d" % (
                self.name, self.ext.protocol[0], self.ext.protocol[1], offer["min"],
                offer["max"])
            self.write(proto.encode({"type": "error", "message": text, "retryable": False}))
            self.complain(text)
            return 1
        hello: Message = {"type": "hello", "protocol": version, "name": self.name,
                          "version": self.ext.version, "actions": self.ext.actions(),
                          "features": list(self.ext.features)}
        if self.ext.min_orchd_version:
            hello["min_orchd_version"] = self.ext.min_orchd_version
        with self.cond:
            if self.phase == _HANDSHAKE:  # (the reader may have seen the action)
                self.phase = _WAITING
        if not self.write(proto.encode(hello)):
            return 1
        while True:
            kind, *rest = self.next_item()
            if kind == "msg" and rest[0] == "action":
                act: _Action = rest[2]
                self.run_action(act)
                self.actions_done += 1
                if self.gone:
                    return 1
                if (act.cancel_reason or "").startswith("protocol error"):
                    return 1
                if self.stop or "session" not in self.ext.features:
                    return 0
                continue
            first = not self.actions_done
            if kind == "eof" or (kind == "msg" and rest[0] == "cancel"):
                # the end of a session (§7.6)
                if first:
                    self.complain("cancelled before the action" if kind == "msg"
                                  else "protocol error: end of input before the action")
                return 1 if first else 0
            self.complain("protocol error: %s" % (
                rest[0] if kind == "bad" else "expected action, got %s" % rest[0]))
            return 1

    def run_action(self, act: _Action) -> None:
        ctx: Optional[Context] = None
        assert act.message is not None
        try:
            try:
                act.armed = True
                if act.cancel_reason is not None:
                    act.raised = True
                    raise Cancelled(act.cancel_reason)
                ctx = Context(self, act, self.load_values(act.message))
                result = self.dispatch(ctx)
            except Cancelled:
                raise
            except BaseException as e:  # noqa: BLE001 - every action ends with a result
                result = self.failure_of(act, e)
            act.armed = False
        except Cancelled:
            act.armed = False
            reason = act.cancel_reason or "interrupted"
            summary = reason if reason.startswith("protocol error") else "cancelled"
            result = {"type": "result", "status": "failure", "summary": summary}
        with self.cond:
            self.phase = _WAITING  # the next action may come as soon as orchd reads this
        self.write(proto.encode(result), act, result=True)

    def load_values(self, msg: Message) -> Config:
        """The action's values sent in files (§4.1) put in place."""
        for name in ("config", "state", "outputs"):
            path = msg.get(name + "_file")
            if path is not None:
                msg[name] = read_value_file(path, "the action's %s_file" % name)
        config = msg.get("config", {})
        if not isinstance(config, dict):
            raise ConfigError("", "config must be a map")
        schema = self.ext.config_schema
        return with_defaults(config, schema) if schema else config

    def dispatch(self, ctx: Context) -> Message:
        ext, action = self.ext, ctx.action
        if action == "describe":
            d: Message = {"type": ext.name, "version": ext.version, "actions": ext.actions()}
            if ext.description:
                d["description"] = ext.description
            if ext.config_schema is not None:
                d["config"] = ext.config_schema
            return {"type": "result", "status": "success", "changed": False,
                    "summary": "%s %s" % (ext.name, ext.version), "describe": d}
        if ext.config_schema is not None:
            check_schema(ctx.message.get("config"), ext.config_schema, ctx.errors,
                         unresolved_ok=action in ("validate", "plan"))
        if not ctx.errors:
            ext.validate(ctx.config, ctx)
        if ctx.errors:
            return self.config_failure(ctx._act, ctx.errors)
        if action == "validate":
            return {"type": "result", "status": "success", "changed": False,
                    "summary": "configuration is valid"}
        res = getattr(ext, action)(ctx.config, ctx)
        if res is None:
            res = Result()
        if not isinstance(res, Result):
            raise TypeError("%s returned %r, not a Result or None" % (action, res))
        if action == "destroy" and res.success and not ctx.state_sent:
            ctx.set_state(None)  # §7.5
        out: Message = {"type": "result", "status": "success" if res.success else "failure"}
        if res.changed is not None:
            out["changed"] = res.changed
        if res.summary is not None:
            out["summary"] = _fit(res.summary)
        return out

    def config_failure(self, act: _Action, errors: ConfigErrors) -> Message:
        for text in errors.texts():  # §7.2: SHOULD also log each error
            self.send(act, {"type": "log", "level": "error", "message": _fit(text)})
        return {"type": "result", "status": "failure", "changed": False,
                "summary": _fit(errors.summary()), "errors": errors.as_list()}

    def failure_of(self, act: _Action, e: BaseException) -> Message:
        if isinstance(e, ConfigError):
            errors = ConfigErrors()
            errors.add(e.path, e.message)
            return self.config_failure(act, errors)
        out: Message = {"type": "result", "status": "failure"}
        if isinstance(e, Failure):
            if e.retryable:
                self.send(act, {"type": "error", "message": _fit(e.summary), "retryable": True})
            if e.changed is not None:
                out["changed"] = e.changed
            out["summary"] = _fit(e.summary)
            return out
        if isinstance(e, SystemExit):
            out["summary"] = "the extension exited (status %s) before its result" % (e.code,)
            return out
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
        sys.stderr.flush()
        out["summary"] = _fit("%s: %s" % (type(e).__name__, e) if str(e) else type(e).__name__)
        return out


def read_value_file(path: str, what: str) -> Any:
    """A value orchd handed over in a file (§4.1)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_VALUE + 1)
    except OSError as e:
        raise Failure("cannot read %s '%s': %s" % (what, path, e.strerror)) from None
    if len(data) > MAX_FILE_VALUE:
        raise Failure("%s '%s' is larger than %d bytes" % (what, path, MAX_FILE_VALUE))
    try:
        text = data.decode("utf-8")
        if proto.nested_deeper(text, MAX_DEPTH):
            raise Failure("%s '%s': nested deeper than %d levels" % (what, path, MAX_DEPTH))
        return proto.loads(text)
    except ValueError as e:
        raise Failure("%s '%s': not JSON: %s" % (what, path, e)) from None


def _private_fds(in_fd: int, out_fd: int) -> Tuple[int, int]:
    """Keep the protocol's pipes for the SDK alone: fd 1 becomes stderr (an
    author's print or a child's output cannot reach the protocol's stdout)
    and fd 0 /dev/null (a child cannot read orchd's messages)."""
    proto_in, proto_out = os.dup(in_fd), os.dup(out_fd)  # not inherited
    os.dup2(2, out_fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, in_fd)
    os.close(null)
    if sys.stdout is not None and sys.stdout is not sys.stderr:
        try:
            sys.stdout.flush()  # to stderr now
        except (OSError, ValueError):
            pass
    sys.stdout = sys.stderr
    return proto_in, proto_out


def run(ext: Extension, argv: Optional[Sequence[str]] = None) -> int:
    """Run ext as the extension process on stdin/stdout; the exit status."""
    argv = list(sys.argv if argv is None else argv)
    type(ext).check_declaration()
    if argv[1:] == ["--manifest"]:
        sys.stdout.write(json.dumps(type(ext).manifest(), indent=2) + "\n")
        return 0
    if len(argv) > 1:
        sys.stderr.write(
            "orchd-ext-%s %s: an orchd extension (protocol %d..%d); it is started by orchd "
            "and speaks JSON lines on stdin/stdout\n(--manifest prints its manifest)\n"
            % (ext.name, ext.version, ext.protocol[0], ext.protocol[1]))
        return 2
    in_fd, out_fd = _private_fds(0, 1)
    rt = _Runtime(ext, in_fd, out_fd)
    root = logging.getLogger()
    handler = _LogHandler(rt)
    root.addHandler(handler)
    if root.level == logging.WARNING:
        root.setLevel(logging.INFO)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, rt.on_signal)
    threading.Thread(target=rt.reader, name="orchd-sdk-stdin", daemon=True).start()
    try:
        return rt.serve()
    except _Exit as e:
        return e.status
    finally:
        root.removeHandler(handler)
        if in_main:
            # what comes now (the exit) must not be a Cancelled
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_IGN)


__all__ = ["Cancelled", "Config", "ConfigError", "Context", "Extension", "Failure",
           "RequestFailed", "Result", "run"]
