"""The project and its records: init, status, log, show."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import click

from roarctl.commands.common import CONTEXT, client, emit_json, json_option
from roarctl.errors import RoarError


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
@click.option("--remote", is_flag=True, help="Ask the team registry (registry.url), not roard.")
@json_option
def show(target: str, verbose: bool, remote: bool, as_json: bool) -> None:
    """Show a job or an artifact: TARGET is a job id, an artifact hash, a unique prefix of
    either, or a file path.

    A job shows its command, inputs and outputs (with hashes and the jobs that produced the
    inputs), git state, environment (secrets redacted), packages and machine. An artifact shows
    the job that produced it and the jobs that read it. A hash the local store does not have is
    looked up in the team registry, when registry.url is set (--remote: only there).

    \b
    Examples:
      roarctl show 3f2a9c          # a job or artifact by prefix
      roarctl show model.pt        # the artifact at this path, by its content
      roarctl show 3f2a9c --json
      roarctl show 9e0c1d7a --remote
    """
    from roar.protocol import Show, ShowArtifact, ShowJob
    from roarctl import render

    if remote:
        _show_remote(target, verbose, as_json)
        return
    try:
        with client() as c:
            request = Show(target=os.fsencode(target), cwd=os.getcwdb(), verbose=verbose)
            reply = c.call(request, expect=(ShowJob, ShowArtifact))
    except RoarError as exc:
        if not falls_back(exc, target):
            raise
        with not_here(target):
            _show_remote(target, verbose, as_json)
        return
    if isinstance(reply, ShowJob):
        emit_json({"job": reply.detail}) if as_json else render.job(reply.detail, verbose)
    else:
        emit_json({"artifact": reply.detail}) if as_json else render.artifact(reply.detail)


def _show_remote(target: str, verbose: bool, as_json: bool) -> None:
    """A record of the team registry, shown as a local one is, under a line saying whose."""
    from roarctl import remote, render

    where: dict[str, object]
    with remote.Remote.open() as reg:
        kind, key = reg.find(target)
        if kind == "artifact":
            artifact, _ = reg.artifact(key)
            where = {"url": reg.page("artifact", key)}
            if as_json:
                emit_json({"artifact": artifact, "registry": where})
                return
            click.echo(f"registry {where['url']}")
            render.artifact(artifact)
        elif kind == "job":
            job, entry = reg.job(key)
            where = {
                "url": reg.page("job", key),
                "owner": entry.owner,
                "visibility": entry.visibility,
                "team": entry.team,
                "session": entry.session,
                "registered": entry.registered,
            }
            if as_json:
                emit_json({"job": job, "registry": where})
                return
            shared = entry.visibility + (f" ({entry.team})" if entry.team else "")
            click.echo(f"registry {where['url']}  registered by {entry.owner}, {shared}")
            render.job(job, verbose)
            if entry.session:
                click.echo(f"session   {entry.session}  (roarctl dag {entry.session[:12]})")
        else:
            found = reg.session(key)
            where = {"url": reg.page("session", key)}
            if as_json:
                emit_json({"session": found, "registry": where})
                return
            s = found.session
            click.echo(f"registry {where['url']}")
            project = f" of {s.project}" if s.project else ""
            click.echo(f"session  {s.hash}{project} on {s.host}, {render.when(s.started)}")
            render.log([remote.row(j) for j in found.jobs])


@contextlib.contextmanager
def not_here(target: str) -> Iterator[None]:
    """A fallback look-up the registry cannot answer either: say both places were asked."""
    try:
        yield
    except RoarError as exc:
        if exc.code == "not-found":
            where = "nor in the registry"
        elif exc.code == "unavailable":
            where = "and the registry cannot tell"
        else:
            raise
        raise RoarError(
            f"nothing matches '{target}' in roar's store, {where}: {exc.message}",
            exc.hint,
            code=exc.code,
        ) from None


def falls_back(exc: RoarError, target: str) -> bool:
    """Whether a target roard does not know is one to look up in the registry: a hash or
    prefix, with a registry set up."""
    if exc.code != "not-found":
        return False
    from roarctl import remote

    return remote.looks_like_hash(target) and remote.configured()


COMMANDS = [init, status, log, show]
