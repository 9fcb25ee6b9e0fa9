"""`roard`: run the daemon (foreground by default; --detach is what roarctl uses to start one)."""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="roard",
        description="The roar daemon: owns the lineage store and answers roarctl over a Unix "
        "socket that only your user can use. roarctl starts it when needed.",
        epilog="examples:\n  roard              run in the foreground (systemd, debugging)\n"
        "  roard --detach     start in the background and return at once",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--detach", action="store_true", help="fork into the background")
    parser.add_argument("--log-stderr", action="store_true", help="also print logs to stderr")
    args = parser.parse_args(argv)
    if args.detach:
        _detach()

    import anyio

    from roard.daemon import AlreadyRunning, run
    from roard.paths import paths
    from roard.store import StoreError

    try:
        anyio.run(lambda: run(paths(), echo_logs=args.log_stderr))
    except AlreadyRunning as exc:
        print(f"roard: already running ({exc})", file=sys.stderr)
        return 0 if args.detach else 1
    except (StoreError, PermissionError, OSError) as exc:
        print(f"roard: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _detach() -> None:
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.chdir("/")


if __name__ == "__main__":
    sys.exit(main())
