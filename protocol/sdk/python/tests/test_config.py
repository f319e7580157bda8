"""Config errors with key paths, "did you mean", and the schema subset."""
from __future__ import annotations

from typing import Any, Dict, List

from orchd_sdk import ConfigErrors, check_schema, closest, is_unresolved

SCHEMA: Dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["command"],
    "properties": {
        "command": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
        "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
        "retries": {"type": "integer", "minimum": 0, "default": 1},
        "db": {"type": "object", "additionalProperties": False,
               "properties": {"host": {"type": "string", "minLength": 1},
                              "port": {"type": "integer"}}},
    },
}


def errors_of(config: Any, action: str = "apply") -> List[Dict[str, str]]:
    errs = ConfigErrors()
    check_schema(config, SCHEMA, errs, unresolved_ok=action in ("validate", "plan"))
    return errs.as_list()


def test_closest_like_the_c_library() -> None:
    assert closest("comand", ["command", "env"]) == "command"
    assert closest("xyz", ["command", "env"]) is None
    assert closest("ab", ["ac", "ad"]) == "ac"  # the first of equally close ones
    assert closest("a" * 70, ["a" * 70]) is None  # too long to compare, as in C


def test_unknown_key_at_its_own_path_with_suggestion() -> None:
    assert errors_of({"command": ["x"], "comand": 1}) == [
        {"path": "comand", "message": "unknown key 'comand' (did you mean 'command'?)"}]
    assert errors_of({"command": ["x"], "zzz": 1}) == [
        {"path": "zzz", "message": "unknown key 'zzz'"}]
    assert errors_of({"command": ["x"], "db": {"hots": "h"}}) == [
        {"path": "db.hots", "message": "unknown key 'hots' (did you mean 'host'?)"}]


def test_paths_of_nested_values() -> None:
    assert errors_of({"command": ["a", 2], "env": {"A": "x", "B": 3}, "db": {"host": ""}}) == [
        {"path": "command[1]", "message": "must be a string"},
        {"path": "env.B", "message": "must be a string"},
        {"path": "db.host", "message": "must be a non-empty string"},
    ]


def test_required_types_enums_ranges() -> None:
    assert errors_of({"mode": "slow", "retries": -1}) == [
        {"path": "command", "message": "is required"},
        {"path": "mode", "message": "must be one of 'fast', 'safe'"},
        {"path": "retries", "message": "must be at least 0"},
    ]
    assert errors_of({"command": [], "retries": True}) == [
        {"path": "command", "message": "must not be empty"},
        {"path": "retries", "message": "must be an integer"},
    ]


def test_config_as_a_whole() -> None:
    assert errors_of([1]) == [{"path": "", "message": "config must be a map"}]


def test_reference_text_accepted_before_apply() -> None:
    ref = "${{ exec.a.outputs.n }}"
    assert is_unresolved(ref) and not is_unresolved("plain")
    assert errors_of({"command": ["x"], "retries": ref}, action="validate") == []
    assert errors_of({"command": ref}, action="plan") == []
    assert errors_of({"command": ["x"], "retries": ref}, action="apply") == [
        {"path": "retries", "message": "must be an integer"}]


def test_collector_texts_and_summary() -> None:
    errs = ConfigErrors()
    assert not errs
    errs.add("command", "is required")
    errs.unknown_key("comand", ["command"])
    errs.add("", "config must be a map")
    assert len(errs) == 3
    assert errs.texts() == ["command: is required",
                            "unknown key 'comand' (did you mean 'command'?)",
                            "config must be a map"]
    assert errs.summary() == "invalid configuration: command: is required (and 2 more)"
    assert errs.as_list()[1] == {"path": "comand",
                                 "message": "unknown key 'comand' (did you mean 'command'?)"}


def test_path_helpers() -> None:
    errs = ConfigErrors()
    errs.add(("env", "FOO"), "must be a string")
    errs.add(("command", 2), "must be a string")
    errs.add(("a", "b", 0, "c"), "x")
    assert [e["path"] for e in errs.as_list()] == ["env.FOO", "command[2]", "a.b[0].c"]
