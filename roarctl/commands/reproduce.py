"""`reproduce`: rebuild an artifact (or a job's outputs, or a session's) from its record, in a
fresh directory, and say whether the result is byte for byte what was recorded."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from roarctl.commands.common import CONTEXT, client, emit_json, json_option
from roarctl.commands.project import falls_back, not_here
from roarctl.errors import RoarError

if TYPE_CHECKING:
    from roar.protocol import PlanReply
    from roarctl.reproduce import Report


@click.command(context_settings=CONTEXT)
@click.argument("target")
@click.option("--into", "into", metavar="DIR", help="Where (default: ./reproduce-<hash12>).")
@click.option("--dry-run", is_flag=True, help="Print the plan; run nothing.")
@click.option("--keep-going", is_flag=True, help="Go on after a job that differs or fails.")
@click.option(
    "--from-scratch", is_flag=True, help="Run every job, even one whose outputs are there."
)
@click.option(
    "--inputs",
    "inputs",
    multiple=True,
    metavar="DIR",
    help="A directory to look for root inputs in, by content hash (repeatable).",
)
@json_option
def reproduce(
    target: str,
    into: str | None,
    dry_run: bool,
    keep_going: bool,
    from_scratch: bool,
    inputs: tuple[str, ...],
    as_json: bool,
) -> None:
    """Rebuild TARGET from its record and check it by hash: an artifact (hash, prefix or
    path), a job id, a step (@3), or a session (`session`, `session:N`).

    The plan (--dry-run prints it) is the jobs that made TARGET, build steps first, from a
    fresh clone of the recorded commit in DIR, with each root input found by its hash, a
    virtualenv per recorded package set, and the recorded environment (secrets from yours or
    `roarctl env`). Each job runs under `roarctl run` in a new session; its outputs are
    compared with the recorded hashes as soon as it ends. Exit status 0 only when TARGET is
    identical. Your own repository, its HEAD, branch, index and stash, is never touched.
    A hash (or a job's id) roar does not have is planned from its lineage in the team
    registry (registry.url), the source cloned from the recorded remote.

    \b
    Examples:
      roarctl reproduce report.txt --dry-run
      roarctl reproduce 4f1c2a --into /tmp/check --inputs ~/datasets
      roarctl reproduce @3 --keep-going --json
    """
    from roarctl import messages
    from roarctl import reproduce as repro

    cwd = os.getcwdb()
    with client() as c:
        try:
            plan = repro.plan(c, target, into, list(inputs), cwd)
        except RoarError as exc:  # a hash roar does not have: the registry's lineage, if it has it
            if not falls_back(exc, target):
                raise
            with not_here(target):
                remote = repro.from_registry(target)
            plan = repro.plan(c, target, into, list(inputs), cwd, remote)
        if dry_run or plan.problems:
            emit_json(plan) if as_json else show_plan(plan)
            if plan.problems:
                raise RoarError(
                    f"the plan has {len(plan.problems)} problem(s) (above): nothing was run",
                    exit_code=1,
                )
            return
        if not as_json:
            show_plan(plan, brief=True)
        run = repro.Reproduction(c, plan, messages.note, keep_going, from_scratch)
        saved = _stdout_to_stderr() if as_json else None
        try:
            report = run.run()
        except OSError as exc:  # the directory, a copy, a clone: one line, not a traceback
            where = f" ({exc.filename})" if exc.filename else ""
            raise RoarError(f"reproduce failed: {exc.strerror or exc}{where}") from None
        finally:
            if saved is not None:
                os.dup2(saved, 1)
                os.close(saved)
    if as_json:
        emit_json(report)
    else:
        show_report(report)
    if report.verdict != "identical":
        raise SystemExit(1)


def _stdout_to_stderr() -> int:
    """With --json, stdout is the report's: the jobs' own output goes to stderr meanwhile."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    return saved


def _size(n: int) -> str:
    from roarctl.render import size

    return size(n)


def show_plan(p: PlanReply, brief: bool = False) -> None:
    """The plan as text: what runs, from where, with what; problems last."""
    what = f"{p.target[:12]} ({p.label})" if p.kind == "artifact" else f"{p.target} ({p.label})"
    out = [f"plan: reproduce {what} in {p.into}"]
    if p.registry is not None:
        out.append(f"registry: {p.registry} (the lineage as registered there)")
    if p.checkout == "local":
        out.append(f"source: {p.repository} (a local clone; the repository itself is untouched)")
    elif p.checkout == "remote":
        out.append(f"source: a clone of {p.repository}")
    else:
        out.append(f"source: none (no recorded commit): the files are root inputs in {p.base}")
    out.append(f"jobs ({len(p.jobs)}), in order:")
    for j in p.jobs:
        at = f" @ {j.commit[:12]}" if j.commit else ""
        out.append(f"  {j.ref or '-':<5} {j.id[:12]}  {j.command}  (in {j.cwd}{at})")
        if brief:
            continue
        for i in (p.interpreters[n] for n in j.interpreters):
            reqs = ", ".join(i.requirements) or "no packages"
            extra = f"; from the build steps: {', '.join(i.provided)}" if i.provided else ""
            out.append(f"          python {i.path}: {reqs}{extra}")
        env = f"env: {len(p.envs[j.env])} variables as recorded" if p.envs else "env: none"
        secrets = f"; secrets from you: {', '.join(j.secrets)}" if j.secrets else ""
        out.append(f"          {env}{secrets}")
        for d in j.differs:
            out.append(f"          differs here: {d}")
    if p.roots and not brief:
        out.append(f"root inputs ({len(p.roots)}):")
        for r in p.roots:
            where = {
                "commit": "from the commit",
                "present": "already in the directory",
                "in-place": "where it is (outside the repository)",
                "copy": f"copied from {r.origin}",
                "missing": click.style("MISSING", fg="red") + f" (seen as {', '.join(r.names)})",
            }[r.source]
            out.append(f"  {r.hash[:12]}  {_size(r.size):>9}  {r.path}  {where}")
    for w in p.wanted:
        out.append(f"target: {w.path} {w.hash[:12]} (made by {(w.producer or '-')[:12]})")
    for line in p.machine if not brief else []:
        out.append(f"this machine: {line}")
    for line in p.notes:
        out.append(f"note: {line}")
    if p.problems:
        out.append(click.style(f"problems ({len(p.problems)}):", fg="red"))
        out += [f"  - {line}" for line in p.problems]
    click.echo("\n".join(out), err=brief)


def show_report(r: Report) -> None:
    lines = []
    for j in r.jobs:
        tail = f" -> job {j.job}" if j.job else ""
        lines.append(f"{j.ref or '-':<5} {j.id[:12]}  {j.verdict}{tail}  {j.command}")
        if j.verdict in ("differs", "failed") and j.reason:
            lines.append(f"        {j.reason}")
        for e in j.diff:
            a = e.a if e.a is not None else "(absent)"
            b = e.b if e.b is not None else "(absent)"
            lines.append(f"        {e.field}: {a} -> {b}" + (f"  ({e.note})" if e.note else ""))
    if r.first_divergence:
        lines.append(f"first divergence: {r.first_divergence}")
    lines.append(f"reproduced {r.target}: {r.verdict}")
    click.echo("\n".join(lines))


COMMANDS = [reproduce]
