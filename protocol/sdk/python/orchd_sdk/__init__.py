"""orchd_sdk: write orchd extensions in Python (standard library only).

    from orchd_sdk import Extension, Result

    class Greet(Extension):
        name = "greet"
        version = "0.1.0"
        config_schema = {"type": "object", "additionalProperties": False,
                         "required": ["who"], "properties": {"who": {"type": "string"}}}

        def apply(self, config, ctx):
            ctx.output("message", "hello, " + config["who"])
            return Result(changed=True, summary="greeted")

    if __name__ == "__main__":
        Greet.main()

See README.md; the protocol is protocol/PROTOCOL.md of orchd.
"""
from . import protocol
from .config import ConfigErrors, check_schema, closest, is_unresolved, with_defaults
from .extension import (Cancelled, Config, ConfigError, Context, Extension, Failure,
                        RequestFailed, Result, run)
from .protocol import PROTOCOL_MAX, PROTOCOL_MIN, parse_line, verdict

__version__ = "0.1.0"

__all__ = [
    "Cancelled", "Config", "ConfigError", "ConfigErrors", "Context", "Extension", "Failure",
    "PROTOCOL_MAX", "PROTOCOL_MIN", "RequestFailed", "Result", "check_schema", "closest",
    "is_unresolved", "parse_line", "protocol", "run", "verdict", "with_defaults",
]
