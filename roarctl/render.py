"""Human-readable rendering of roard's replies (the --json forms print the replies as they are)."""

from __future__ import annotations

import time

import click

from roar.model import Usage
from roar.protocol import (
    ArtifactDetail,
    DagReply,
    DiffReply,
    IORecord,
    JobDetail,
    JobRow,
    LineageNode,
    OutboxInfo,
    PopReply,
    StatusReply,
)


def when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def duration(row: JobRow) -> str:
    if row.ended is None:
        return "-"
    s = row.ended - row.started
    return f"{s:.2f}s" if s < 60 else f"{int(s // 60)}m{int(s % 60):02d}s"


def outcome(row: JobRow) -> str:
    if row.status == "running":
        return "running"
    if row.signal:
        return f"signal {row.signal}"
    if row.exit_code is None:
        return row.status
    text = f"exit {row.exit_code}"
    return text if row.status == "complete" else f"{text}, {row.status}"


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def log(jobs: list[JobRow]) -> None:
    if not jobs:
        click.echo("no jobs yet: put `roarctl run` in front of a command to record one")
        return
    for j in jobs:
        step = (j.step or "-") + ("*" if j.superseded else "!" if j.stale else "")
        click.echo(
            f"{click.style(j.id, fg='yellow')}  {step:<5} {when(j.started)}  {duration(j):>8}  "
            f"{outcome(j):<10} {j.inputs:>3} in {j.outputs:>3} out  {j.command}"
        )
    if any(j.superseded or j.stale for j in jobs):
        click.echo(
            "(* superseded: the step was run again since; ! stale: an upstream step "
            "re-ran with different outputs)"
        )


def status(s: StatusReply) -> None:
    d = s.daemon
    runs = f", {d.runs} run(s) in progress" if d.runs else ""
    click.echo(
        f"roard:   running (pid {d.pid}, version {d.version}, since {when(d.started)}{runs})"
    )
    click.echo(
        f"store:   {d.store} ({size(d.store_bytes)}, {d.jobs} jobs, {d.artifacts} artifacts)"
    )
    if d.store_note:
        click.echo(click.style(f"         {d.store_note}", fg="red"))
    click.echo(f"project: {s.project or '(none: not inside a git repository or roar project)'}")
    if s.git is not None:
        head = s.git.branch or "(detached)"
        commit = (s.git.commit or "no commits")[:12]
        dirty = "clean" if s.git.clean else f"{len(s.git.dirty)} uncommitted change(s)"
        click.echo(f"git:     {head} @ {commit}, {dirty}")
    if s.session is not None:
        click.echo(f"session: {s.session} ({s.steps} step(s))")
    for line in s.stale:
        click.echo(click.style(f"stale:   {line}", fg="red"))
    for line in s.modified:
        click.echo(click.style(f"changed: {line}", fg="red"))
    if s.registry is not None:
        outbox(s.registry)
    if s.recent:
        click.echo("\nrecent jobs:")
        log(s.recent)


def outbox(r: OutboxInfo) -> None:
    """Registration: where to, and what is waiting."""
    mode = "every finished job (registry.auto)" if r.auto else "on `roarctl register`"
    click.echo(f"registry: {r.url or '(registry.url is not set)'}, {mode}")
    line = f"outbox:   {r.queued} queued"
    if r.held:
        line += click.style(f", {r.held} refused by the registry (held)", fg="red")
    line += f"; last success {when(r.last_success)}" if r.last_success else "; nothing sent yet"
    if r.retry_at is not None:
        line += f"; next try in {max(0, r.retry_at - time.time()):.0f}s"
    click.echo(line)
    if r.last_error and (r.queued or r.held):
        error = f"          last error {when(r.last_error_at)}: {r.last_error}"
        click.echo(click.style(error, fg="red"))


def job(d: JobDetail, verbose: bool) -> None:
    j = d.job
    click.echo(f"job      {click.style(j.id, fg='yellow')}")
    click.echo(f"command  {j.command}")
    click.echo(f"cwd      {d.cwd}")
    if j.project:
        click.echo(f"project  {j.project}")
    click.echo(f"started  {when(j.started)}   duration {duration(j)}   {outcome(j)}")
    if d.git is not None:
        g = d.git
        click.echo(
            f"git      {g.root}  {g.branch or '(detached)'} @ {(g.commit or '-')[:12]}"
            f"{'' if g.clean else f'  dirty: {len(g.dirty)} file(s)'}"
        )
        for df in g.dirty:
            click.echo(f"           {df.status:<9} {df.path}  {(df.hash or '')[:12]}")
        for name, url in g.remotes.items():
            click.echo(f"         remote {name} {url}")
    click.echo(f"\ninputs ({len(d.inputs)})")
    for r in d.inputs:
        origin = f"  <- job {r.producer}" if r.producer else ""
        click.echo(f"  {r.hash[:12]}  {size(r.size):>9}  {r.path}{origin}")
    click.echo(f"outputs ({len(d.outputs)})")
    for r in d.outputs:
        click.echo(f"  {r.hash[:12]}  {size(r.size):>9}  {r.path}")
    if d.processes:
        click.echo(f"\nprocesses ({len(d.processes)})")
        for p in d.processes[: 50 if not verbose else None]:
            end = f"signal {p.signal}" if p.signal else f"exit {p.exit_code}"
            click.echo(f"  {p.pid:>7} <- {p.ppid:<7} {end:<9} {' '.join(p.argv)[:100]}")
    if d.request:
        click.echo(f"request   {d.request}  (roarctl request show {d.request})")
    for t in d.trackers:
        what = " ".join(x for x in (t.project, t.run_id) if x)
        click.echo(f"tracker   {t.tool} {what}  {t.url or t.source}")
    if d.external:
        click.echo(f"\nexternal ({len(d.external)}): " + ", ".join(d.external))
    if d.blind_spots:
        click.echo("\nnot observed:")
        for b in d.blind_spots:
            click.echo(f"  - {b}")
    f = d.filtered
    if f.count:
        rules = ", ".join(f"{n} {rule}" for rule, n in sorted(f.by_rule.items()))
        click.echo(
            f"\nfiltered  {f.count} system file(s): {rules}"
            + ("" if verbose else "  (--verbose lists them)")
        )
        for path in f.paths:
            click.echo(f"  {path}")
    if d.packages:
        for interp, pkgs in d.packages.items():
            names = ", ".join(f"{p.name}=={p.version}" for p in pkgs[: None if verbose else 12])
            more = "" if verbose or len(pkgs) <= 12 else f", ... ({len(pkgs)} in all)"
            click.echo(f"\npackages  {interp}: {names}{more}")
    if d.system is not None:
        shown = d.system.packages[: None if verbose else 12]
        names = ", ".join(f"{p.name} {p.version}" for p in shown)
        more = "" if len(shown) == len(d.system.packages) else f", ... ({len(d.system.packages)})"
        unowned = f"; {d.system.unowned} file(s) of no package" if d.system.unowned else ""
        click.echo(f"system    {d.system.manager}: {names or '(none)'}{more}{unowned}")
    if d.conda is not None:
        env = d.conda
        click.echo(f"conda     {env.name or '-'} ({env.prefix}): {len(env.packages)} package(s)")
    if d.container is not None:
        box = d.container
        what = " ".join(x for x in (box.image, box.id and f"({box.id})") if x)
        click.echo(f"container {box.runtime}{' ' + what if what else ''}")
    if d.hardware is not None:
        h = d.hardware
        gpus = f", GPUs: {'; '.join(h.gpus)}" if h.gpus else ""
        click.echo(
            f"machine   {h.hostname}: {h.os}, {h.cpu} x{h.cpus}, {size(h.memory_bytes)} RAM{gpus}"
        )
    if d.usage is not None:
        click.echo(f"used      {usage(d.usage)}")
    if d.env:
        click.echo(f"env       {len(d.env)} variables (secrets redacted; --json lists them)")


def usage(u: Usage) -> str:
    """A job's compute in one line: CPU (user, system), peak memory, wall time, GPUs."""
    gpus = f"{u.gpus} x {u.gpu_model}, {u.gpu_seconds:.1f} GPU-s" if u.gpus else "no GPU"
    return (
        f"CPU {u.cpu_seconds:.2f}s (user {u.user_seconds:.2f}s, sys {u.system_seconds:.2f}s)"
        f" · peak memory {size(u.max_rss_bytes)} · wall {u.wall_seconds:.2f}s · {gpus}"
    )


SHOWN = 20  # rows of a long list shown as text; --json has them all


def _capped(rows: list[str]) -> list[str]:
    if len(rows) <= SHOWN:
        return rows
    return [*rows[:SHOWN], f"  ... {len(rows) - SHOWN} more (--json lists all)"]


def artifact(a: ArtifactDetail) -> None:
    lines = [f"artifact {click.style(a.hash, fg='yellow')}  ({size(a.size)})"]
    lines += _capped([f"  seen as {p}" for p in a.paths])
    lines.append("produced by")
    lines += [f"  job {r.id}  {when(r.started)}  {r.command}" for r in a.produced_by[:1]]
    if not a.produced_by:
        copied = " and was copied" if a.copies else ""
        lines.append(f"  (no recorded job made this content: it came from outside roar{copied})")
    if a.copies:  # later writers of the same bytes
        lines.append(f"copies ({len(a.copies)})")
        lines += _capped(
            [f"  job {r.id}  {when(r.started)}  {r.command}  -> {r.path}" for r in a.copies]
        )
    lines.append(f"read by ({len(a.read_by)})")
    lines += _capped([f"  job {r.id}  {when(r.started)}  {r.command}" for r in a.read_by])
    click.echo("\n".join(lines))


def records(recs: list[IORecord], indent: str = "") -> None:
    if not recs:
        click.echo(f"{indent}(none)")
    for r in recs:
        origin = f"  <- job {r.producer}" if r.producer else ""
        click.echo(f"{indent}{r.hash[:12]}  {size(r.size):>9}  {r.path}{origin}")


def pop(p: PopReply, preview: bool) -> None:
    verb = "would remove" if preview else "removed"
    click.echo(f"roar: {verb} job {p.job.id} {p.job.step or ''} ({p.job.command})")
    for path in p.deleted:
        click.echo(f"  {'would delete' if preview else 'deleted'} {path}")
    for path in p.kept:
        reason = "" if "changed" in path else " (it existed before the job, or a job read it)"
        click.echo(f"  kept {path}{reason}")


def dag(d: DagReply, artifacts: bool, title: str | None = None) -> None:
    if not d.steps:
        click.echo("this session has no steps yet: `roarctl run CMD` records one")
        return
    click.echo(title or f"session {d.session}" + (f" of {d.project}" if d.project else ""))
    for s in d.steps:
        marks = []
        if s.stale_reason:
            marks.append(click.style(f"stale: {s.stale_reason}", fg="red"))
        if s.superseded:
            marks.append(f"re-run {len(s.superseded)}x")
        if s.job.exit_code not in (0, None):
            marks.append(f"exit {s.job.exit_code}")
        deps = f"  <- {', '.join(s.depends_on)}" if s.depends_on else ""
        tail = f"  [{'; '.join(marks)}]" if marks else ""
        click.echo(f"{click.style(s.ref, fg='cyan'):>6}  {s.job.id}  {s.job.command}{deps}{tail}")
        if artifacts:
            for r in s.inputs:
                click.echo(f"          in   {r.hash[:12]}  {r.path}")
            for r in s.outputs:
                click.echo(f"          out  {r.hash[:12]}  {r.path}")


def tree(root: LineageNode) -> None:
    def line(node: LineageNode) -> str:
        more = " ..." if node.truncated else ""
        if node.kind == "job":
            return f"{click.style('job ' + node.id, fg='yellow')}  {node.label}{more}"
        return f"{node.label}  {node.id[:12]}{more}"

    click.echo(line(root))

    def walk(node: LineageNode, prefix: str) -> None:
        for i, child in enumerate(node.children):
            last = i == len(node.children) - 1
            click.echo(f"{prefix}{'└── ' if last else '├── '}{line(child)}")
            walk(child, prefix + ("    " if last else "│   "))

    walk(root, "")


def diff(d: DiffReply) -> None:
    if d.same:
        click.echo(
            f"jobs {d.a} and {d.b}: same code, command, inputs, packages, environment and machine"
        )
        return
    click.echo(f"--- job {d.a}\n+++ job {d.b}")
    for e in d.entries:
        click.echo(click.style(e.field, bold=True))
        click.echo(f"  - {e.a if e.a is not None else '(absent)'}")
        click.echo(f"  + {e.b if e.b is not None else '(absent)'}")
        if e.note:
            click.echo(f"    {e.note}")
