"""Running commands traced: run, build. roarctl.entry runs plain `run` invocations without
click (see there); both ways end in roarctl.run.main."""

from __future__ import annotations

import sys

import click

from roarctl.commands.common import PASSTHROUGH


@click.command(context_settings=PASSTHROUGH)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing of roar's own.")
@click.option("-v", "--verbose", is_flag=True, help="Also count the system files filtered out.")
@click.option(
    "--request",
    metavar="R-N",
    envvar="ROAR_REQUEST",
    help="The training request it runs for: refused unless approved, or claimed by you "
    "(asks the registry first; default $ROAR_REQUEST).",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(command: tuple[str, ...], quiet: bool, verbose: bool, request: str | None) -> None:
    """Run COMMAND exactly as the shell would, and record what it read and wrote.

    The command keeps your terminal, stdin, signals and exit status; afterwards one line on
    stderr names the job and counts its inputs and outputs.

    \b
    Examples:
      roarctl run python train.py --lr 0.01
      roarctl run -- sh -c 'sort data.csv > sorted.csv'
      roarctl run -q make all
      roarctl run --request R-12 python train.py
    """
    from roarctl.run import main

    sys.exit(main(list(command), quiet=quiet, verbose=verbose, request=request))


@click.command(context_settings=PASSTHROUGH)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing of roar's own.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def build(command: tuple[str, ...], quiet: bool) -> None:
    """Run a setup COMMAND as a build step (@B1, @B2, ...): recorded like `run`, and run first
    when the pipeline is reproduced.

    \b
    Examples:
      roarctl build pip install -e .
      roarctl build make
    """
    from roarctl.run import main

    sys.exit(main(list(command), quiet=quiet, kind="build"))


COMMANDS = [run, build]
