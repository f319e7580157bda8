"""The declaration: actions, manifest, and what a declaration must hold."""
from __future__ import annotations

from typing import Any, Dict, Optional, Type

import pytest

from orchd_sdk import Context, Extension, Result, protocol


class OnlyApply(Extension):
    name = "only"

    def apply(self, config: Dict[str, Any], ctx: Context) -> Optional[Result]:
        return None


class Full(OnlyApply):
    name = "full-ext_2"
    version = "2.0.0-rc1"
    min_orchd_version = "0.1.0"
    description = "d"
    config_schema = {"type": "object"}
    manifest_extra = {"secrets": "token", "tools": ["git"]}

    def plan(self, config: Dict[str, Any], ctx: Context) -> Optional[Result]:
        return Result(False, "no change")

    def destroy(self, config: Dict[str, Any], ctx: Context) -> Optional[Result]:
        return None


def test_actions_follow_the_handlers() -> None:
    assert OnlyApply.actions() == ["describe", "apply"]
    assert Full.actions() == ["describe", "validate", "plan", "apply", "destroy"]


def test_manifest() -> None:
    assert OnlyApply.manifest() == {"name": "only", "version": "0.1.0",
                                    "protocol": {"min": 1, "max": 1}}
    assert Full.manifest() == {"name": "full-ext_2", "version": "2.0.0-rc1",
                               "protocol": {"min": 1, "max": 1}, "min_orchd_version": "0.1.0",
                               "description": "d", "secrets": "token", "tools": ["git"]}


def test_a_valid_declaration_passes() -> None:
    OnlyApply.check_declaration()
    Full.check_declaration()


@pytest.mark.parametrize("attrs, text", [
    ({"name": "Bad"}, "name must match"),
    ({"name": ""}, "name must match"),
    ({"version": "latest"}, "version must be a dotted version"),
    ({"min_orchd_version": "x"}, "min_orchd_version must be a dotted version"),
    ({"protocol": (1, 2)}, "protocol must be within 1..1"),
])
def test_bad_declarations(attrs: Dict[str, Any], text: str) -> None:
    bad: Type[Extension] = type("Bad", (OnlyApply,), attrs)
    with pytest.raises(TypeError, match=text):
        bad.check_declaration()


def test_apply_is_required() -> None:
    class NoApply(Extension):
        name = "noapply"

    with pytest.raises(TypeError, match="must implement apply"):
        NoApply.check_declaration()


def test_versions() -> None:
    assert protocol.version_cmp("1.2", "1.2.0") == 0
    assert protocol.version_cmp("0.9.0", "0.10.0") == -1
    assert protocol.version_cmp("2.0.0-rc1", "2.0.0") == 0
    assert protocol.negotiate((1, 1), (1, 99)) == 1
    assert protocol.negotiate((1, 1), (2, 3)) is None


def test_encode_refuses_what_orchd_would_refuse() -> None:
    assert protocol.encode({"type": "log", "level": "info", "message": "m"}) == \
        b'{"type":"log","level":"info","message":"m"}\n'
    with pytest.raises(ValueError, match="field 'percent' must be a number from 0 to 100"):
        protocol.encode({"type": "progress", "message": "m", "percent": 150})
    with pytest.raises(ValueError):
        protocol.encode({"type": "state", "state": float("nan")})
    with pytest.raises(protocol.LineTooLong):
        protocol.encode({"type": "state", "state": "x" * protocol.MAX_LINE})
    deep: Any = []
    for _ in range(64):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper than 64 levels"):
        protocol.encode({"type": "state", "state": deep})
