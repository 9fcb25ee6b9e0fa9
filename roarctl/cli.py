"""roarctl's click command line: the group, and every command registered on it, from here.

Commands live in roarctl.commands, one module per group; they import what only they need when
they run, so that `roarctl --help` and a query start fast. Plain `roarctl run` skips click
altogether (roarctl.entry)."""

from __future__ import annotations

import sys

import click

from roarctl.commands import (
    completion,
    compute,
    config,
    daemon,
    metadata,
    pipeline,
    project,
    registry,
    reproduce,
    request,
    run,
)
from roarctl.commands.common import CONTEXT


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="roar", prog_name="roarctl")
def cli() -> None:
    """roar records what your commands read and write, by content hash, with the code,
    environment and machine they ran on, so any result can be traced back.

    \b
    Examples:
      roarctl run python preprocess.py     # run as usual; roar observes
      roarctl log                          # jobs in this project, newest first
      roarctl show data/clean.csv          # where did this file come from?
    """


for _module in (
    run,
    project,
    pipeline,
    reproduce,
    metadata,
    config,
    registry,
    request,
    compute,
    daemon,
    completion,
):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def click_main() -> None:
    """Run the click command line; RoarError propagates to roarctl.entry.main."""
    try:
        cli.main(standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
