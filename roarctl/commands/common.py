"""What the command modules share: click settings, the --json option and printer, a client."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from roarctl.client import Client

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# `run`, `build`: everything after the options is the command, its own options included
PASSTHROUGH = {**CONTEXT, "ignore_unknown_options": True, "allow_interspersed_args": False}
# Every count or limit option takes one of these: a number out of range is a one-line usage
# error here, never a request roard refuses (the bounds are roar.protocol's Limit and Depth).
COUNT = click.IntRange(1, 1_000_000)
DEPTH = click.IntRange(0, 1_000_000)


# C0 and C1 controls, DEL, and the bidi embeddings, overrides and isolates
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_LINE = re.compile("[\t\n]|" + _UNSAFE.pattern)


def printable(text: str, lines: bool = False) -> str:
    """What someone else wrote (a registry's record), safe to print to a terminal: a control
    character (an escape sequence) or a bidi override is shown as `\\x1b`, `\\u202e`; tabs
    and newlines are kept only where the text may have `lines`."""
    unsafe = _UNSAFE if lines else _UNSAFE_LINE
    return unsafe.sub(lambda m: repr(m[0])[1:-1], text)


def json_option(f: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(f)


def client() -> Client:
    """A connection to roard, started if none runs."""
    from roarctl.client import Client

    return Client.connect()


def emit_json(value: Any) -> None:
    import msgspec

    click.echo(msgspec.json.format(msgspec.json.encode(value), indent=2).decode())
