"""The project and its records: init, status, log, show."""

from __future__ import annotations

import os

import click

from roarctl.commands.common import CONTEXT, client, emit_json, json_option


@click.command(context_settings=CONTEXT)
@json_option
def init(as_json: bool) -> None:
    """Mark the current project (git top-level, else this directory) for roar.

    Optional: any git repository is already a project. Writes .roar/config.toml and keeps it
    out of git through .git/info/exclude (never .gitignore).

    \b
    Example:
      cd ~/src/my-model && roarctl init
    """
    from roar.protocol import Init, InitDone

    with client() as c:
        reply = c.call(Init(cwd=os.getcwdb()), expect=InitDone)
    if as_json:
        emit_json(reply)
    else:
        verb = "initialized" if reply.created else "already initialized"
        click.echo(f"roar: {verb} project {reply.root} ({reply.config})")


@click.command(context_settings=CONTEXT)
@click.option("-n", "--limit", default=5, show_default=True, help="How many recent jobs.")
@json_option
def status(limit: int, as_json: bool) -> None:
    """Show the daemon, the store, the current project and its latest jobs.

    \b
    Example:
      roarctl status --json | jq .daemon
    """
    from roar.protocol import GetStatus, StatusReply
    from roarctl import render

    with client() as c:
        reply = c.call(GetStatus(cwd=os.getcwdb(), limit=limit), expect=StatusReply)
    if as_json:
        emit_json(reply)
    else:
        render.status(reply)


@click.command(context_settings=CONTEXT)
@click.option("-n", "--limit", default=20, show_default=True, help="How many jobs.")
@click.option("-a", "--all", "all_projects", is_flag=True, help="Jobs of every project.")
@json_option
def log(limit: int, all_projects: bool, as_json: bool) -> None:
    """List jobs, newest first (this project's, or all outside a project).

    \b
    Examples:
      roarctl log -n 5
      roarctl log --all --json
    """
    from roar.protocol import GetLog, LogReply
    from roarctl import render

    with client() as c:
        request = GetLog(cwd=os.getcwdb(), limit=limit, all_projects=all_projects)
        reply = c.call(request, expect=LogReply)
    if as_json:
        emit_json(reply.jobs)
    else:
        render.log(reply.jobs)


@click.command(context_settings=CONTEXT)
@click.argument("target")
@click.option("-v", "--verbose", is_flag=True, help="List filtered system files too.")
@json_option
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

    with client() as c:
        request = Show(target=target, cwd=os.getcwdb(), verbose=verbose)
        reply = c.call(request, expect=(ShowJob, ShowArtifact))
    if isinstance(reply, ShowJob):
        emit_json({"job": reply.detail}) if as_json else render.job(reply.detail, verbose)
    else:
        emit_json({"artifact": reply.detail}) if as_json else render.artifact(reply.detail)


COMMANDS = [init, status, log, show]
