"""`roard`: run the daemon (foreground by default; --detach is what roarctl uses to start one)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="roard",
        description="The roar daemon: owns the lineage store and answers roarctl over a Unix "
        "socket that only your user can use. roarctl starts it when needed.",
        epilog="examples:\n  roard              run in the foreground (systemd, debugging)\n"
        "  roard --detach     start in the background; return once it listens (or failed)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--detach", action="store_true", help="fork into the background")
    parser.add_argument("--log-stderr", action="store_true", help="also print logs to stderr")
    args = parser.parse_args(argv)
    report: Callable[[str], None] = lambda message: print(message, file=sys.stderr)  # noqa: E731
    ready: Callable[[], None] = lambda: None  # noqa: E731
    if args.detach:
        report, ready = _detach()

    # Every file roard makes (store, its WAL and shared memory, logs, lock, prerun file) is
    # 0600 and every directory 0700 from the moment it exists, whatever umask started roard.
    os.umask(0o077)

    import anyio

    from roar.errors import StoreError
    from roar.paths import paths
    from roard.daemon import AlreadyRunning, run

    try:
        anyio.run(lambda: run(paths(), echo_logs=args.log_stderr, on_ready=ready))
    except AlreadyRunning as exc:
        if args.detach:
            ready()
            return 0
        report(f"roard: already running ({exc})")
        return 1
    except (StoreError, OSError) as exc:
        report(f"roard: error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _detach() -> tuple[Callable[[str], None], Callable[[], None]]:
    """Fork; the parent exits 0 once the child listens, or 1 with the child's error message."""
    r, w = os.pipe()
    if os.fork() > 0:
        os.close(w)
        with os.fdopen(r, "rb") as pipe:
            message = pipe.read().decode(errors="replace")
        if message == "ready":
            os._exit(0)
        sys.stderr.write(message or "roard: the daemon exited before it was ready\n")
        os._exit(1)
    os.close(r)
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.chdir("/")
    os.set_inheritable(w, False)

    def send(text: str) -> None:
        nonlocal w
        if w >= 0:
            os.write(w, text.encode())
            os.close(w)
            w = -1

    return (lambda message: send(message + "\n")), (lambda: send("ready"))


if __name__ == "__main__":
    sys.exit(main())
