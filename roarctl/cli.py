"""roarctl: the command line. Thin: parse, ask roard, render; lazy imports per command."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from roarctl.errors import RoarError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _json_option(f: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(f)


def _client() -> Any:
    from roarctl.client import Client

    return Client.connect()


def _emit_json(value: Any) -> None:
    import msgspec

    click.echo(msgspec.json.format(msgspec.json.encode(value), indent=2).decode())


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


@cli.command(
    context_settings={**CONTEXT, "ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing of roar's own.")
@click.option("-v", "--verbose", is_flag=True, help="Also count the system files filtered out.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(command: tuple[str, ...], quiet: bool, verbose: bool) -> None:
    """Run COMMAND exactly as the shell would, and record what it read and wrote.

    The command keeps your terminal, stdin, signals and exit status; afterwards one line on
    stderr names the job and counts its inputs and outputs.

    \b
    Examples:
      roarctl run python train.py --lr 0.01
      roarctl run -- sh -c 'sort data.csv > sorted.csv'
      roarctl run -q make all
    """
    from roarctl.run import run as do_run

    sys.exit(do_run(list(command), quiet=quiet, verbose=verbose))


@cli.command(context_settings=CONTEXT)
@_json_option
def init(as_json: bool) -> None:
    """Mark the current project (git top-level, else this directory) for roar.

    Optional: any git repository is already a project. Writes .roar/config.toml and keeps it
    out of git through .git/info/exclude (never .gitignore).

    \b
    Example:
      cd ~/src/my-model && roarctl init
    """
    from roar.protocol import Init, InitDone

    with _client() as c:
        reply = c.call(Init(cwd=os.getcwdb()), expect=InitDone)
    if as_json:
        _emit_json(reply)
    else:
        verb = "initialized" if reply.created else "already initialized"
        click.echo(f"roar: {verb} project {reply.root} ({reply.config})")


@cli.command(context_settings=CONTEXT)
@click.option("-n", "--limit", default=5, show_default=True, help="How many recent jobs.")
@_json_option
def status(limit: int, as_json: bool) -> None:
    """Show the daemon, the store, the current project and its latest jobs.

    \b
    Example:
      roarctl status --json | jq .daemon
    """
    from roar.protocol import GetStatus, StatusReply
    from roarctl import render

    with _client() as c:
        reply = c.call(GetStatus(cwd=os.getcwdb(), limit=limit), expect=StatusReply)
    if as_json:
        _emit_json(reply)
    else:
        render.status(reply)


@cli.command(context_settings=CONTEXT)
@click.option("-n", "--limit", default=20, show_default=True, help="How many jobs.")
@click.option("-a", "--all", "all_projects", is_flag=True, help="Jobs of every project.")
@_json_option
def log(limit: int, all_projects: bool, as_json: bool) -> None:
    """List jobs, newest first (this project's, or all outside a project).

    \b
    Examples:
      roarctl log -n 5
      roarctl log --all --json
    """
    from roar.protocol import GetLog, LogReply
    from roarctl import render

    with _client() as c:
        request = GetLog(cwd=os.getcwdb(), limit=limit, all_projects=all_projects)
        reply = c.call(request, expect=LogReply)
    if as_json:
        _emit_json(reply.jobs)
    else:
        render.log(reply.jobs)


@cli.command(context_settings=CONTEXT)
@click.argument("target")
@click.option("-v", "--verbose", is_flag=True, help="List filtered system files too.")
@_json_option
def show(target: str, verbose: bool, as_json: bool) -> None:
    """Show a job or an artifact: TARGET is a job id, an artifact hash, a unique prefix of
    either, or a file path.

    A job shows its command, inputs and outputs (with hashes and the jobs that produced the
    inputs), git state, environment (secrets redacted), packages and machine. An artifact shows
    the job that produced it and the jobs that read it.

    \b
    Examples:
      roarctl show 3f2a9c          # a job or artifact by prefix
      roarctl show model.pt        # the artifact at this path, by its content
      roarctl show 3f2a9c --json
    """
    from roar.protocol import Show, ShowArtifact, ShowJob
    from roarctl import render

    with _client() as c:
        request = Show(target=target, cwd=os.getcwdb(), verbose=verbose)
        reply = c.call(request, expect=(ShowJob, ShowArtifact))
    if isinstance(reply, ShowJob):
        _emit_json({"job": reply.detail}) if as_json else render.job(reply.detail, verbose)
    else:
        _emit_json({"artifact": reply.detail}) if as_json else render.artifact(reply.detail)


@cli.group(context_settings=CONTEXT)
def daemon() -> None:
    """Control roard, the per-user daemon that keeps the store (roarctl starts it on demand)."""


@daemon.command("start", context_settings=CONTEXT)
def daemon_start() -> None:
    """Start roard in the background (no-op when it runs)."""
    with _client() as c:
        click.echo(f"roard running (pid {c.welcome.pid}, version {c.welcome.server})")


@daemon.command("stop", context_settings=CONTEXT)
def daemon_stop() -> None:
    """Stop roard cleanly (runs in progress keep running and are recorded on the next start)."""
    import time

    from roar.paths import paths
    from roar.protocol import Ok, Shutdown
    from roarctl.client import Client

    try:
        c = Client.connect(autostart=False)
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
@_json_option
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
        _emit_json(info)
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


# Commands defined in their own modules register on `cli` when imported.
from roarctl import pipeline, settings  # noqa: E402, F401
