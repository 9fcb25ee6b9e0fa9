"""daemon: start, stop and query roard, and install its systemd user units."""

from __future__ import annotations

import sys
from typing import Any

import click

from roarctl.commands.common import CONTEXT, client, emit_json, json_option
from roarctl.errors import RoarError


@click.group(context_settings=CONTEXT)
def daemon() -> None:
    """Control roard, the per-user daemon that keeps the store (roarctl starts it on demand)."""


@daemon.command("start", context_settings=CONTEXT)
def daemon_start() -> None:
    """Start roard in the background (no-op when it runs)."""
    with client() as c:
        click.echo(f"roard running (pid {c.welcome.pid}, version {c.welcome.server})")


@daemon.command("stop", context_settings=CONTEXT)
def daemon_stop() -> None:
    """Stop roard cleanly (runs in progress keep running and are recorded on the next start)."""
    import time

    from roar.paths import paths
    from roar.protocol import Ok, Shutdown
    from roarctl.client import Client, OtherProtocol, terminate

    try:
        c = Client.connect(autostart=False)
    except OtherProtocol as exc:  # an older roard, left running by an upgrade
        terminate(exc.pid, paths())
        click.echo(f"roard stopped (pid {exc.pid})")
        return
    except RoarError:
        click.echo("roard is not running")
        return
    with c:
        pid = c.welcome.pid
        c.call(Shutdown(), expect=Ok)
    for _ in range(500):
        if not paths().socket.exists():
            break
        time.sleep(0.01)
    click.echo(f"roard stopped (pid {pid})")


@daemon.command("status", context_settings=CONTEXT)
@json_option
def daemon_status(as_json: bool) -> None:
    """Say whether roard runs, and where its socket, store and log are."""
    from roar.paths import paths
    from roarctl.client import Client

    p = paths()
    info: dict[str, Any] = {
        "running": False,
        "socket": str(p.socket),
        "store": str(p.db),
        "log": str(p.log),
    }
    try:
        with Client.connect(autostart=False) as c:
            info.update(running=True, pid=c.welcome.pid, version=c.welcome.server)
    except RoarError:
        pass
    if as_json:
        emit_json(info)
        return
    state = f"running (pid {info['pid']})" if info["running"] else "not running"
    click.echo(
        f"roard: {state}\nsocket: {info['socket']}\nstore:  {info['store']}\nlog:    {info['log']}"
    )
    if not info["running"]:
        sys.exit(3)


@daemon.command("install-service", context_settings=CONTEXT)
@click.option(
    "--dir",
    "unit_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Unit directory (default: $XDG_CONFIG_HOME/systemd/user).",
)
def daemon_install_service(unit_dir: str | None) -> None:
    """Write the systemd user units (roard.service, roard.socket).

    \b
    Then:
      systemctl --user daemon-reload && systemctl --user enable --now roard.socket
    """
    from roarctl import service

    for path in service.install(unit_dir):
        click.echo(f"wrote {path}")
    click.echo(
        "enable with: systemctl --user daemon-reload && systemctl --user enable --now roard.socket"
    )


COMMANDS = [daemon]
