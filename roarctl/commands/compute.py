"""`compute report`: where the compute went, from the team registry (its price table)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from roarctl.commands.common import CONTEXT, emit_json, json_option, printable
from roarctl.errors import RoarError

if TYPE_CHECKING:
    from roar.registry import ComputeReport, ComputeRow


@click.group(context_settings=CONTEXT)
def compute() -> None:
    """What jobs used and what it cost, as the team registry accounts it.

    \b
    Examples:
      roarctl compute report                    # by person, the last 30 days
      roarctl compute report --by project --since 8w
      roarctl compute report --by request       # R-12, ...; jobs for no request under -
    """


@compute.command(context_settings=CONTEXT)
@click.option(
    "--by",
    type=click.Choice(["person", "agent", "project", "request"]),
    default="person",
    show_default=True,
    help="One row per person, agent account, project or training request (-: none).",
)
@click.option("--since", default="30d", show_default=True, help="The window: 12h, 30d, 8w.")
@json_option
def report(by: str, since: str, as_json: bool) -> None:
    """The registry's jobs that you can read and that started in the window: CPU- and
    GPU-hours and their cost at the registry's prices (`glaas admin price set`), and how much
    of it made outputs a later job read ("read") versus outputs nobody read ("unread").

    \b
    Examples:
      roarctl compute report --by agent --since 12h --json
    """
    from roar.registry import ComputeReport, since_seconds
    from roarctl import remote

    try:
        since_seconds(since)
    except ValueError as exc:
        raise RoarError(str(exc), exit_code=2) from None
    with remote.Remote.open() as reg:
        found = reg.get("/compute", ComputeReport, by=by, since=since)
    if as_json:
        emit_json(found)
        return
    _print(found, since)


def _num(x: float) -> str:
    """Two decimals, or two significant digits for what two decimals would show as 0."""
    return f"{x:.2f}" if x == 0 or abs(x) >= 0.01 else f"{x:.2g}"


def _line(key: str, r: ComputeRow) -> str:
    cells = (r.cpu_hours, r.gpu_hours, r.cost, r.read_cost, r.unread_cost)
    nums = " ".join(f"{_num(x):>{w}}" for x, w in zip(cells, (10, 10, 11, 11, 11), strict=True))
    return f"{printable(key)[:24]:<24} {r.jobs:>6} {nums}"


def _print(found: ComputeReport, since: str) -> None:
    prices = ", ".join(f"{p.resource} {p.per_hour:g}/h" for p in found.prices) or "none set"
    click.echo(f"compute by {found.by}, last {since} (prices: {prices})")
    head = f"{found.by:<24} {'jobs':>6} {'CPU-h':>10} {'GPU-h':>10} {'cost':>11}"
    click.echo(f"{head} {'read':>11} {'unread':>11}")
    for r in found.rows:
        click.echo(_line(r.key, r))
    click.echo(_line("total", found.total))
    if found.unpriced_gpu_hours:
        click.echo(
            f"note: {found.unpriced_gpu_hours:.2f} GPU-h of models with no price "
            "(glaas admin price set gpu:MODEL ...)"
        )


COMMANDS = [compute]
