"""The `roarctl` executable. `run` skips click (~16 ms of imports on every traced command): it goes
straight to roarctl.run.main. Every other command, and any `run` invocation this parser does not
fully understand, goes to click (roarctl.cli). Errors from any command are shown here, in one
place."""

from __future__ import annotations

import sys

from roarctl import messages
from roarctl.errors import RoarError


def _fast_run(args: list[str]) -> tuple[list[str], bool, bool] | None:
    """(command, quiet, verbose) for `run [-q] [-v] [--] CMD...`, else None."""
    if not args or args[0] != "run":
        return None
    quiet = verbose = False
    for i, arg in enumerate(args[1:], start=1):
        if arg in ("-q", "--quiet"):
            quiet = True
        elif arg in ("-v", "--verbose"):
            verbose = True
        elif arg == "--":
            rest = args[i + 1 :]
            return (rest, quiet, verbose) if rest else None
        elif arg.startswith("-"):
            return None  # --help, combined flags, typos: click explains
        else:
            return args[i:], quiet, verbose
    return None


def main() -> None:
    try:
        fast = _fast_run(sys.argv[1:])
        if fast is not None:
            from roarctl.run import main as run

            sys.exit(run(*fast))
        from roarctl.cli import click_main

        click_main()
    except RoarError as exc:
        messages.error(exc.message, exc.hint)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(141)
    except KeyboardInterrupt:
        sys.exit(130)
