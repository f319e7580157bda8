"""Configuration errors with key paths, "did you mean", and a small schema check.

PROTOCOL.md §7.2: validate reports every problem as ``{path, message}``
(``command``, ``env.FOO``, ``command[2]``; ``""`` for the config as a
whole); an unknown key is reported at its own path as ``unknown key
'comand' (did you mean 'command'?)``.  The texts match the C library's
(``op_errors_*`` in protocol/errors.c).
"""
from __future__ import annotations

import copy
import re
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

Schema = Dict[str, Any]
PathLike = Union[str, Sequence[Union[str, int]]]

_REFERENCE = re.compile(r"\$\{\{.*?\}\}", re.DOTALL)


def is_unresolved(value: object) -> bool:
    """True for a string holding ``${{ ... }}``: an output reference whose value
    is not known yet (validate and plan before the upstream was applied, §7.2)."""
    return isinstance(value, str) and _REFERENCE.search(value) is not None


def join_path(path: PathLike) -> str:
    """``("env", "FOO")`` -> ``env.FOO``; ``("command", 2)`` -> ``command[2]``."""
    if isinstance(path, str):
        return path
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += "[%d]" % part
        else:
            out += ("." if out else "") + str(part)
    return out


def _distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j - 1] + (ca != cb), prev[j] + 1, cur[j - 1] + 1))
        prev = cur
    return prev[-1]


def closest(name: str, candidates: Iterable[str]) -> Optional[str]:
    """The candidate closest to name by edit distance when it is at most 2 (the
    first of equally close ones), else None; as ``op_closest`` in C (names of
    63 bytes or more are not compared)."""
    best, best_d = None, 3
    if len(name.encode("utf-8")) >= 63:
        return None
    for c in candidates:
        if len(c.encode("utf-8")) >= 63:
            continue
        d = _distance(name, c)
        if d < best_d:
            best, best_d = c, d
    return best


class ConfigErrors:
    """Collects configuration errors, each a ``{"path", "message"}``.

    ``add(path, message)``; ``unknown_key(path, known)``; ``as_list()`` is
    what a failed validate's result carries in ``errors``.  A path is a
    string (``"env.FOO"``) or a sequence of keys and indexes
    (``("command", 2)`` -> ``command[2]``).
    """

    def __init__(self) -> None:
        self._errors: List[Tuple[str, str]] = []

    def add(self, path: PathLike, message: str) -> None:
        self._errors.append((join_path(path), message))

    def unknown_key(self, key: str, known: Iterable[str], parent: PathLike = "") -> None:
        """``unknown key 'KEY' (did you mean 'CLOSEST'?)`` at the key's own path."""
        self.add(_child(parent, key), _unknown_text(key, list(known)))

    def check_keys(self, mapping: Dict[str, Any], known: Iterable[str],
                   parent: PathLike = "") -> None:
        """unknown_key() for every key of mapping that is not in known."""
        known = list(known)
        for key in mapping:
            if key not in known:
                self.unknown_key(key, known, parent)

    def extend(self, other: "ConfigErrors") -> None:
        self._errors.extend(other._errors)

    def __len__(self) -> int:
        return len(self._errors)

    def __bool__(self) -> bool:
        return bool(self._errors)

    def __iter__(self) -> Iterator[Tuple[str, str]]:
        return iter(list(self._errors))

    def as_list(self) -> List[Dict[str, str]]:
        return [{"path": p, "message": m} for p, m in self._errors]

    def texts(self) -> List[str]:
        return [error_text(p, m) for p, m in self._errors]

    def summary(self, prefix: str = "invalid configuration: ") -> str:
        """``PREFIX FIRST`` or ``PREFIX FIRST (and N more)``, as the C library."""
        texts = self.texts()
        if not texts:
            return prefix + "invalid configuration"
        more = " (and %d more)" % (len(texts) - 1) if len(texts) > 1 else ""
        return prefix + texts[0] + more


def _unknown_text(key: str, known: Sequence[str]) -> str:
    """As ``op_errors_unknown_key`` in C."""
    best = closest(key, known)
    return "unknown key '%s'%s" % (key, " (did you mean '%s'?)" % best if best else "")


def error_text(path: str, message: str) -> str:
    """``path: message``, or the message alone when path is ``""`` or it quotes it."""
    if not path or ("'%s'" % path) in message:
        return message
    return "%s: %s" % (path, message)


# --------------------------------------------------------------------------
# the JSON Schema subset of §7.1
# --------------------------------------------------------------------------

_TYPE_NAMES = {
    "string": "a string", "integer": "an integer", "number": "a number",
    "boolean": "a boolean", "object": "a map", "array": "a list", "null": "null",
}


def _has_type(value: object, t: str) -> bool:
    if t == "string":
        return isinstance(value, str)
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    if t == "null":
        return value is None
    return True  # a type this subset does not know: not checked


def _quote(v: object) -> str:
    return "'%s'" % v if isinstance(v, str) else repr(v)


def check_schema(value: Any, schema: Schema, errors: ConfigErrors, path: PathLike = "",
                 unresolved_ok: bool = False) -> None:
    """Add to errors what in value breaks schema.

    The subset of JSON Schema that PROTOCOL.md §7.1 names (``type``,
    ``properties``, ``required``, ``items``, ``additionalProperties``,
    ``enum``; ``description`` and ``default`` are not checks) and
    ``minLength``, ``minItems``, ``minimum``, ``maximum``.  An unknown key
    is reported at its own path with a "did you mean".  unresolved_ok: a
    string holding a reference ``${{ ... }}`` passes any check (its value
    is not known yet: validate and plan, §7.2).
    """
    p = join_path(path)
    if unresolved_ok and is_unresolved(value):
        return
    types = schema.get("type")
    if types is not None:
        tl = [types] if isinstance(types, str) else list(types)
        if not any(_has_type(value, t) for t in tl):
            if p == "" and tl == ["object"]:
                errors.add("", "config must be a map")
            elif tl == ["string"] and schema.get("minLength", 0) >= 1:
                errors.add(p, "must be a non-empty string")
            else:
                errors.add(p, "must be " + " or ".join(_TYPE_NAMES.get(t, t) for t in tl))
            return
    if "enum" in schema and value not in schema["enum"]:
        errors.add(p, "must be one of " + ", ".join(_quote(v) for v in schema["enum"]))
        return
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        errors.add(p, "must be a non-empty string" if schema["minLength"] == 1
                   else "must be at least %d characters long" % schema["minLength"])
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.add(p, "must be at least %s" % schema["minimum"])
        if "maximum" in schema and value > schema["maximum"]:
            errors.add(p, "must be at most %s" % schema["maximum"])
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.add(p, "must not be empty" if schema["minItems"] == 1
                       else "must have at least %d items" % schema["minItems"])
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                check_schema(item, schema["items"], errors, _child(path, i), unresolved_ok)
    if isinstance(value, dict):
        _check_object(value, schema, errors, path, unresolved_ok)


def _child(path: PathLike, key: Union[str, int]) -> Tuple[Union[str, int], ...]:
    base: Tuple[Union[str, int], ...] = ((path,) if path else ()) if isinstance(path, str) \
        else tuple(path)
    return base + (key,)


def _check_object(value: Dict[str, Any], schema: Schema, errors: ConfigErrors,
                  path: PathLike, unresolved_ok: bool) -> None:
    props: Dict[str, Schema] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key in schema.get("required", []):
        if key not in value:
            errors.add(_child(path, key), "is required")
    for key, v in value.items():
        if key in props:
            check_schema(v, props[key], errors, _child(path, key), unresolved_ok)
        elif extra is False:
            errors.add(_child(path, key), _unknown_text(key, list(props)))
        elif isinstance(extra, dict):
            check_schema(v, extra, errors, _child(path, key), unresolved_ok)


def with_defaults(value: Any, schema: Schema) -> Any:
    """A copy of value with the schema's ``default`` of every missing property
    filled in (in nested objects too, where they are present)."""
    if not isinstance(value, dict):
        return copy.deepcopy(value)
    out = dict(value)
    for key, sub in schema.get("properties", {}).items():
        if key in out:
            out[key] = with_defaults(out[key], sub)
        elif "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
    return out
