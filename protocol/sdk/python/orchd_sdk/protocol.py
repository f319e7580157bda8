"""The orchd extension protocol's codec: framing, parsing, validation, encoding.

Written from protocol/PROTOCOL.md (version 1, revision 1.1).  The verdicts
and error texts are the ones of protocol/vectors/README.md: ``verdict(raw,
direction)`` renders ``empty``, ``non-protocol``, ``valid:TYPE`` or
``error:TEXT`` exactly as the conformance vectors spell them.
"""
from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union

PROTOCOL_MIN = 1
PROTOCOL_MAX = 1
MAX_LINE = 1048576  # bytes, without the "\n" (§4)
MAX_DEPTH = 64  # the message object is level 1 (§4)
MAX_FILE_VALUE = 67108864  # a value handed over in a file (§4.1)

TO_EXT = "to_ext"  # orchd -> extension (its stdin)
FROM_EXT = "from_ext"  # extension -> orchd (its stdout)

ACTIONS = ("describe", "validate", "plan", "apply", "destroy")
LEVELS = ("debug", "info", "warning", "error")
TYPES_TO_EXT = frozenset({"hello", "action", "cancel", "response"})
TYPES_FROM_EXT = frozenset(
    {"hello", "log", "progress", "output", "mask", "state", "error", "result", "request"})

Message = Dict[str, Any]


class LineTooLong(ValueError):
    """A message that does not fit in one protocol line (§4)."""


class ProtocolError(Exception):
    """A JSON object that is not a valid message; ``str()`` is the exact text."""


class Parsed(NamedTuple):
    """What a line is: ``kind`` is ``empty``, ``non-protocol``, ``valid`` or ``error``."""

    kind: str
    type: Optional[str] = None  # valid: the message type
    message: Optional[Message] = None  # valid: the message
    error: Optional[str] = None  # error: the exact protocol-error text

    @property
    def verdict(self) -> str:
        """The verdict string of the conformance vectors."""
        if self.kind == "valid":
            return "valid:%s" % self.type
        if self.kind == "error":
            return "error:%s" % self.error
        return self.kind


# --------------------------------------------------------------------------
# versions (§5.1)
# --------------------------------------------------------------------------

def version_valid(v: object) -> bool:
    """Dotted numeric: components separated by '.', each starting with a digit."""
    return isinstance(v, str) and v != "" and all(
        p[:1] in "0123456789" and p[:1] != "" for p in v.split("."))


def _version_key(v: str) -> List[int]:
    key = [int(re.match(r"[0-9]*", p).group() or 0)  # type: ignore[union-attr]
           for p in v.split(".")]
    while key and key[-1] == 0:
        key.pop()
    return key


def version_cmp(a: str, b: str) -> int:
    """-1, 0 or 1 as a < b, a == b, a > b (``1.2`` == ``1.2.0``, ``-rc1`` ignored)."""
    ka, kb = _version_key(a), _version_key(b)
    return (ka > kb) - (ka < kb)


def negotiate(ours: Tuple[int, int], theirs: Tuple[int, int]) -> Optional[int]:
    """The highest protocol version in both ranges, or None."""
    lo, hi = max(ours[0], theirs[0]), min(ours[1], theirs[1])
    return hi if lo <= hi else None


# --------------------------------------------------------------------------
# message validation (§6)
# --------------------------------------------------------------------------

def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def plain_path(path: str) -> bool:
    """A relative path without '.', '..' or empty segments (§4.1)."""
    return not path.startswith("/") and all(s not in ("", ".", "..") for s in path.split("/"))


_KINDS: Dict[str, Tuple[str, Callable[[Any], bool]]] = {
    "string": ("a string", lambda v: isinstance(v, str)),
    "nonempty": ("a non-empty string", lambda v: isinstance(v, str) and v != ""),
    "int": ("an integer", _is_int),
    "bool": ("a boolean", lambda v: isinstance(v, bool)),
    "object": ("an object", lambda v: isinstance(v, dict)),
    "array": ("an array", lambda v: isinstance(v, list)),
    "any": ("a JSON value", lambda v: True),
    "strings": ("an array of strings",
                lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
    "version": ("a dotted version string", version_valid),
}


class _Checker:
    def __init__(self, type_: str, msg: Message) -> None:
        self.p, self.msg = type_ + ": ", msg

    def fail(self, text: str) -> None:
        raise ProtocolError(self.p + text)

    def field(self, name: str, kind: str, required: bool = True) -> bool:
        """Check field name; False when it is absent (and optional)."""
        if name not in self.msg:
            if required:
                self.fail("missing required field '%s'" % name)
            return False
        text, ok = _KINDS[kind]
        if not ok(self.msg[name]):
            self.fail("field '%s' must be %s" % (name, text))
        return True

    def non_negative_id(self) -> None:
        self.field("id", "int")
        if self.msg["id"] < 0:
            self.fail("field 'id' must be a non-negative integer")

    def value_or_file(self, name: str, kind: str, file: str, relative: bool) -> None:
        """Field name inline, or file instead (§4.1), exactly one."""
        if file not in self.msg:
            self.field(name, kind)
            return
        if name in self.msg:
            self.fail("fields '%s' and '%s' are exclusive" % (name, file))
        self.field(file, "nonempty")
        path = self.msg[file]
        if relative and not plain_path(path):
            self.fail("field '%s' must be a relative path without '.', '..' or empty segments"
                      % file)
        if not relative and not path.startswith("/"):
            self.fail("field '%s' must be an absolute path" % file)


def _check_to_ext(t: str, c: _Checker, m: Message) -> None:
    if t == "hello":
        c.field("protocol", "object")
        for k in ("min", "max"):
            if k not in m["protocol"]:
                c.fail("missing required field 'protocol.%s'" % k)
            if not _is_int(m["protocol"][k]):
                c.fail("field 'protocol.%s' must be an integer" % k)
        if not 1 <= m["protocol"]["min"] <= m["protocol"]["max"]:
            c.fail("field 'protocol' must satisfy 1 <= min <= max")
        c.field("orchd_version", "version")
    elif t == "action":
        c.field("action", "string")
        if m["action"] not in ACTIONS:
            c.fail("unknown action '%s'" % m["action"])
        if m["action"] != "describe":
            c.field("instance", "nonempty")
            c.field("stack", "string")
            for name, kind in (("config", "object"), ("state", "any"), ("outputs", "object")):
                c.value_or_file(name, kind, name + "_file", relative=False)
            c.field("workdir", "string")
    elif t == "cancel":
        c.field("reason", "string")
    elif t == "response":
        c.non_negative_id()
        c.field("ok", "bool")
        if m["ok"]:
            c.field("result", "object")
        else:
            c.field("error", "string")


def _check_from_ext(t: str, c: _Checker, m: Message) -> None:
    if t == "hello":
        c.field("protocol", "int")
        if m["protocol"] < 1:
            c.fail("field 'protocol' must be a positive integer")
        c.field("name", "nonempty")
        c.field("version", "version")
        c.field("min_orchd_version", "version", required=False)
        c.field("actions", "strings")
        c.field("features", "strings", required=False)
    elif t == "log":
        c.field("level", "string")
        if m["level"] not in LEVELS:
            c.fail("field 'level' must be one of debug, info, warning, error")
        c.field("message", "string")
    elif t == "progress":
        c.field("message", "string")
        if "percent" in m and not (_is_number(m["percent"]) and 0 <= m["percent"] <= 100):
            c.fail("field 'percent' must be a number from 0 to 100")
    elif t == "output":
        c.field("key", "nonempty")
        c.value_or_file("value", "any", "file", relative=True)
        c.field("secret", "bool", required=False)
    elif t == "mask":
        c.field("value", "string")
    elif t == "state":
        c.value_or_file("state", "any", "file", relative=True)
        c.field("secret", "bool", required=False)
    elif t == "error":
        c.field("message", "string")
        c.field("retryable", "bool", required=False)
    elif t == "result":
        c.field("status", "string")
        if m["status"] not in ("success", "failure"):
            c.fail("field 'status' must be \"success\" or \"failure\"")
        c.field("changed", "bool", required=False)
        c.field("summary", "string", required=False)
        c.field("describe", "object", required=False)
        if c.field("errors", "array", required=False):
            for i, e in enumerate(m["errors"]):
                if not isinstance(e, dict):
                    c.fail("field 'errors[%d]' must be an object" % i)
                for k in ("path", "message"):
                    if not isinstance(e.get(k), str):
                        c.fail("field 'errors[%d].%s' must be a string" % (i, k))
    elif t == "request":
        c.non_negative_id()
        c.field("op", "nonempty")
        if m["op"] == "fetch":
            c.field("source", "object")


def validate_message(msg: Message, direction: str) -> str:
    """The type of a decoded JSON object, or raise ProtocolError with the exact text."""
    if "type" not in msg:
        raise ProtocolError("missing required field 'type'")
    t = msg["type"]
    if not isinstance(t, str):
        raise ProtocolError("field 'type' must be a string")
    if t not in TYPES_TO_EXT | TYPES_FROM_EXT:
        raise ProtocolError("unknown message type '%s'" % t)
    if direction == TO_EXT:
        if t not in TYPES_TO_EXT:
            raise ProtocolError("message type '%s' is not allowed from orchd" % t)
        _check_to_ext(t, _Checker(t, msg), msg)
    else:
        if t not in TYPES_FROM_EXT:
            raise ProtocolError("message type '%s' is not allowed from an extension" % t)
        _check_from_ext(t, _Checker(t, msg), msg)
    return t


# --------------------------------------------------------------------------
# lines (§4)
# --------------------------------------------------------------------------

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def nested_deeper(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether [ and { nest deeper than limit outside the strings of text.

    A scan of the text, not a parse, so that it answers for text that a
    parser would refuse or recurse too deep on.
    """
    if text.count("[") + text.count("{") <= limit:
        return False  # the common case, at C speed
    steps = (1 if b in "[{" else -1 for b in _BRACKETS.findall(_STRING.sub("", text)))
    return max(accumulate(steps)) > limit


def value_count(text: str) -> int:
    """How many JSON values text holds, as §4.1 counts them: one more than
    the ``,``, ``[`` and ``{`` outside strings."""
    bare = _STRING.sub('""', text)
    return 1 + bare.count(",") + bare.count("[") + bare.count("{")


def _no_constant(name: str) -> Any:
    raise ValueError("not JSON: " + name)  # NaN, Infinity: not JSON (RFC 8259)


def loads(text: str) -> Any:
    """Strict JSON (no NaN/Infinity); ValueError when the text is not JSON."""
    return json.loads(text, parse_constant=_no_constant)


def parse_line(raw: Union[bytes, str], direction: str) -> Parsed:
    """What one raw line (without its ``\\n``) is, for the given direction."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if len(raw) > MAX_LINE:
        return Parsed("error", error="line exceeds %d bytes" % MAX_LINE)
    body = raw.strip(b" \t\r")
    if not body:
        return Parsed("empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Parsed("non-protocol")
    if "\0" in text:
        return Parsed("non-protocol")
    # the scan first: a deeper value is an error even when it is not an
    # object (as orchd's parser sees it while it reads), and json.loads
    # never recurses deeper than MAX_DEPTH
    if nested_deeper(text):
        return Parsed("error", error="message nested deeper than %d levels" % MAX_DEPTH)
    try:
        value = loads(text)
    except (ValueError, RecursionError):
        return Parsed("non-protocol")
    if not isinstance(value, dict):
        return Parsed("non-protocol")
    try:
        return Parsed("valid", type=validate_message(value, direction), message=value)
    except ProtocolError as e:
        return Parsed("error", error=str(e))


def verdict(raw: Union[bytes, str], direction: str) -> str:
    """``empty``, ``non-protocol``, ``valid:TYPE`` or ``error:TEXT`` (vectors/README.md)."""
    return parse_line(raw, direction).verdict


def dumps(value: Any) -> str:
    """Compact JSON text; ValueError for NaN/Infinity (not JSON)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode(msg: Message, direction: str = FROM_EXT) -> bytes:
    """One protocol line (ending in ``\\n``) for a message that must be valid.

    Raises ValueError when it is not (the text of the protocol error), when
    it is longer than MAX_LINE, or nested deeper than MAX_DEPTH.
    """
    try:
        validate_message(msg, direction)
    except ProtocolError as e:
        raise ValueError("invalid %s message: %s" % (msg.get("type"), e)) from None
    line = dumps(msg).encode("utf-8")
    if len(line) > MAX_LINE:
        raise LineTooLong("line exceeds %d bytes" % MAX_LINE)
    if nested_deeper(line.decode("utf-8")):
        raise ValueError("message nested deeper than %d levels" % MAX_DEPTH)
    return line + b"\n"
