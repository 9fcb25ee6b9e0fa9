"""completion: the shell completion script for bash, zsh or fish."""

from __future__ import annotations

import os
import sys

import click

from roarctl.commands.common import CONTEXT
from roarctl.errors import RoarError


@click.command(context_settings=CONTEXT)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    Examples:
      eval "$(roarctl completion bash)"        # in ~/.bashrc
      roarctl completion fish > ~/.config/fish/completions/roarctl.fish
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover (click ships all three)
        raise RoarError(f"no completion for {shell}")
    root = click.get_current_context().find_root().command  # the `roarctl` group
    prog = os.path.basename(sys.argv[0]) or "roarctl"
    click.echo(cls(root, {}, prog, f"_{prog.upper()}_COMPLETE").source())


COMMANDS = [completion]
