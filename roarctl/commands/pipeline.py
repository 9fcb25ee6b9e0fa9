"""The session's pipeline: reset, pop, dag, lineage, inputs, diff, export."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

import click

from roarctl.commands.common import CONTEXT, client, emit_json, json_option
from roarctl.errors import RoarError

if TYPE_CHECKING:
    from roar.protocol import DagReply


@click.command(context_settings=CONTEXT)
@json_option
def reset(as_json: bool) -> None:
    """Start a new session in this project: the next run is step @1 of a new pipeline.

    \b
    Example:
      roarctl reset && roarctl run python prepare.py
    """
    from roar.protocol import Reset, SessionInfo

    with client() as c:
        reply = c.call(Reset(cwd=os.getcwdb()), expect=SessionInfo)
    emit_json(reply) if as_json else click.echo(f"roar: {reply.message}")


@click.command(context_settings=CONTEXT)
@click.option("--delete-outputs", is_flag=True, help="Also delete the job's output files.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def pop(delete_outputs: bool, yes: bool, as_json: bool) -> None:
    """Undo the session's most recent job: remove its record.

    Files stay unless --delete-outputs is given; even then a file another job read, or one
    changed since it was recorded, is never deleted.

    \b
    Examples:
      roarctl pop
      roarctl pop --delete-outputs -y
    """
    from roar.protocol import Pop, PopReply
    from roarctl import render

    cwd = os.getcwdb()
    with client() as c:
        request = Pop(cwd=cwd, delete_outputs=delete_outputs, dry_run=True)
        preview = c.call(request, expect=PopReply)
        if as_json and delete_outputs and not yes:
            raise RoarError(
                "pop --delete-outputs --json deletes without asking: add -y", exit_code=2
            )
        if not yes and not as_json:
            render.pop(preview, preview=True)
            if not click.confirm(
                "remove this job's record"
                + (" and delete those files" if preview.deleted else "")
                + "?",
                default=False,
            ):
                raise SystemExit(1)
        request = Pop(cwd=cwd, delete_outputs=delete_outputs, dry_run=False, job_id=preview.job.id)
        reply = c.call(request, expect=PopReply)
    emit_json(reply) if as_json else render.pop(reply, preview=False)


@click.command(context_settings=CONTEXT)
@click.argument("session", required=False)
@click.option("--artifacts", is_flag=True, help="List each step's inputs and outputs.")
@click.option("--format", "fmt", type=click.Choice(["text", "dot", "mermaid"]), default="text")
@click.option("--remote", is_flag=True, help="SESSION is in the team registry (the default).")
@json_option
def dag(session: str | None, artifacts: bool, fmt: str, remote: bool, as_json: bool) -> None:
    """Show the session's pipeline: its steps, what each depends on, and which are stale
    (an upstream step re-ran with different outputs) or superseded (re-run since).

    Without SESSION, the current session of this project. SESSION is a session's hash in the
    team registry (or a job's there: its session), as `roarctl register --session` and
    `roarctl show JOB --remote` print it.

    \b
    Examples:
      roarctl dag --artifacts
      roarctl dag --format dot | dot -Tsvg > pipeline.svg
      roarctl dag --format mermaid
      roarctl dag 4b1e0c9a7f3d          # a session in the team registry
    """
    from roar.protocol import DagReply, GetDag
    from roarctl import export, render

    title = None
    registry: dict[str, str] | None = None
    if session is None and remote:
        raise RoarError(
            "which session? give its hash in the registry",
            "`roarctl register --session` prints it, and `roarctl show JOB --remote`",
            exit_code=2,
        )
    if session is not None:
        reply, title, registry = _remote_dag(session)
    else:
        with client() as c:
            reply = c.call(GetDag(cwd=os.getcwdb()), expect=DagReply)
    if as_json:
        import msgspec

        emit_json(reply if registry is None else {**msgspec.to_builtins(reply), **registry})
    elif fmt == "dot":
        click.echo(export.dag_dot(reply), nl=False)
    elif fmt == "mermaid":
        click.echo(export.dag_mermaid(reply), nl=False)
    else:
        render.dag(reply, artifacts, title)


def _remote_dag(ref: str) -> tuple[DagReply, str, dict[str, str]]:
    from roarctl import remote, render

    with remote.Remote.open() as reg:
        kind, key = reg.find(ref)
        if kind == "job":
            _, entry = reg.job(key)
            if entry.session is None:
                raise RoarError(f"job {key[:12]} was registered without a session")
            key = entry.session
        elif kind != "session":
            raise RoarError(
                f"{ref} is an artifact, not a session", f"roarctl lineage {ref} shows its lineage"
            )
        reply, found = reg.dag(key)
        s = found.session
        page = reg.page("session", s.hash)
    title = f"session {s.hash[:12]}" + (f" of {s.project}" if s.project else "")
    title += f" on {s.host}, {render.when(s.started)}  ({page})"
    return reply, title, {"registry": page}


@click.command(context_settings=CONTEXT)
@click.argument("target")
@click.option("--downstream", is_flag=True, help="What was made from TARGET, not what made it.")
@click.option("--depth", type=click.IntRange(min=0), default=0, help="Job levels (0: all).")
@click.option("--remote", is_flag=True, help="Ask the team registry (registry.url), not roard.")
@json_option
def lineage(target: str, downstream: bool, depth: int, remote: bool, as_json: bool) -> None:
    """Show the lineage of TARGET (job id, @N, artifact hash or prefix, or path) as a tree:
    upstream by default, or --downstream. A hash the local store does not have is looked up
    in the team registry, when registry.url is set (--remote: only there).

    \b
    Examples:
      roarctl lineage model.pt
      roarctl lineage @1 --downstream --depth 2
      roarctl lineage 9e0c1d7a --remote
    """
    from roar.protocol import GetLineage, LineageReply
    from roarctl import render
    from roarctl.commands.project import falls_back, not_here

    fallback = False
    if not remote:
        try:
            with client() as c:
                request = GetLineage(
                    target=os.fsencode(target),
                    cwd=os.getcwdb(),
                    downstream=downstream,
                    depth=depth,
                )
                reply = c.call(request, expect=LineageReply)
        except RoarError as exc:
            if not falls_back(exc, target):
                raise
            fallback = True
    if remote or fallback:
        from roarctl import remote as registry

        with (
            not_here(target) if fallback else contextlib.nullcontext(),
            registry.Remote.open() as reg,
        ):
            kind, key = reg.find(target)
            if kind == "session":
                raise RoarError(f"{target} is a session", f"roarctl dag {target} shows it")
            root = reg.lineage(key, downstream, depth)
            page = reg.page(kind, key)
        if as_json:
            emit_json({"root": root, "downstream": downstream, "registry": page})
        else:
            click.echo(f"registry {page}")
            render.tree(root)
        return
    emit_json(reply) if as_json else render.tree(reply.root)


@click.command(context_settings=CONTEXT)
@click.argument("target")
@click.option("--unsourced", is_flag=True, help="Only inputs no recorded job produced.")
@json_option
def inputs(target: str, unsourced: bool, as_json: bool) -> None:
    """List the root inputs TARGET depends on. With --unsourced, only those no recorded job
    produced: you will need them to reproduce TARGET elsewhere.

    \b
    Examples:
      roarctl inputs metrics.json
      roarctl inputs @3 --unsourced --json
    """
    from roar.protocol import GetInputs, InputsReply
    from roarctl import render

    with client() as c:
        request = GetInputs(target=os.fsencode(target), cwd=os.getcwdb(), unsourced=unsourced)
        reply = c.call(request, expect=InputsReply)
    emit_json(reply.inputs) if as_json else render.records(reply.inputs)


@click.command(context_settings=CONTEXT)
@click.argument("a")
@click.argument("b")
@json_option
def diff(a: str, b: str, as_json: bool) -> None:
    """Show what differs in the provenance of A and B (jobs, @N, artifacts or paths): code,
    command, inputs (with the first place their histories diverge), packages, environment,
    machine.

    \b
    Examples:
      roarctl diff model-a.pt model-b.pt
      roarctl diff @2 3f2a9c
    """
    from roar.protocol import Diff, DiffReply
    from roarctl import render

    with client() as c:
        reply = c.call(Diff(a=os.fsencode(a), b=os.fsencode(b), cwd=os.getcwdb()), expect=DiffReply)
    emit_json(reply) if as_json else render.diff(reply)


@click.command(context_settings=CONTEXT)
@click.argument("target")
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(["prov-json", "openlineage", "dot", "mermaid"]),
)
def export(target: str, fmt: str) -> None:
    """Export TARGET's upstream lineage as W3C PROV-JSON, OpenLineage run events (JSON lines,
    for Marquez and other lineage tools), Graphviz dot or Mermaid.

    \b
    Examples:
      roarctl export model.pt --format prov-json > model.prov.json
      roarctl export @3 --format openlineage | curl -X POST ... (one event per line)
    """
    from roar.protocol import GetLineage, LineageReply, Show, ShowJob
    from roarctl import export as formats

    cwd = os.getcwdb()
    with client() as c:
        reply = c.call(GetLineage(target=os.fsencode(target), cwd=cwd), expect=LineageReply)
        details = {}
        for job_id in formats.job_ids(reply.root):
            shown = c.call(Show(target=job_id.encode(), cwd=cwd), expect=ShowJob)
            details[job_id] = shown.detail
    click.echo(formats.render(fmt, reply.root, details), nl=False)


COMMANDS = [reset, pop, dag, lineage, inputs, diff, export]
