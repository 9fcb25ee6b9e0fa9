"""`roarctl reproduce TARGET`: run roard's plan in a fresh directory and prove, hash by hash,
that the result is what was recorded.

roard plans (roard.plan: which jobs, in what order, from which source and inputs); this module
runs the plan: the directory (roarctl.workspace), an environment per interpreter
(roarctl.venvs), then each job under the tracer (roarctl.run.Runner), so the reproduction is
itself recorded, in a new session of the directory's project, each job labelled
`reproduces=<original job>`. As soon as a job ends, each of its outputs' hashes is compared with
the recorded one; a job whose outputs are already there with the recorded hashes is skipped
(unless from_scratch). The first job that differs or fails stops the run (unless keep_going),
and the `diff` of its context with the original's says why.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec

from roar.protocol import (
    Diff,
    DiffEntry,
    DiffReply,
    EnvOp,
    EnvReply,
    FrameError,
    GetPlan,
    LabelOp,
    LabelReply,
    PlanJob,
    PlanReply,
    RemoteLineage,
    Reset,
    SessionInfo,
)
from roarctl.client import Client
from roarctl.errors import RoarError
from roarctl.workspace import Workspace

Verdict = Literal["identical", "differs", "skipped", "failed", "not run"]


class OutputCheck(msgspec.Struct):
    path: str
    recorded: str
    reproduced: str | None  # None: the job did not make it


class JobResult(msgspec.Struct):
    id: str  # the original job
    ref: str | None
    command: str
    verdict: Verdict
    job: str | None = None  # the reproduction's job
    exit_code: int | None = None
    outputs: list[OutputCheck] = []
    reason: str | None = None  # why it failed, or what differs first
    diff: list[DiffEntry] = []  # the context of the original and the reproduction, compared


class Report(msgspec.Struct):
    target: str
    kind: str
    label: str
    into: str
    verdict: Literal["identical", "differs"]
    jobs: list[JobResult]
    wanted: list[OutputCheck]
    first_divergence: str | None = None
    session: int | None = None  # the reproduction's session
    environments: dict[str, str] = {}  # recorded interpreter -> the environment made for it
    plan: PlanReply | None = None


def plan(
    client: Client,
    target: str,
    into: str | None,
    inputs: list[str],
    cwd: bytes,
    remote: RemoteLineage | None = None,
) -> PlanReply:
    """roard's plan for TARGET (nothing runs), from the local store, or from the registry's
    records in `remote` (`from_registry`)."""
    dirs = []
    for d in inputs:
        path = os.path.abspath(os.path.join(cwd, os.fsencode(d)))
        if not os.path.isdir(path):
            raise RoarError(f"--inputs {d}: not a directory", exit_code=2)
        dirs.append(path)
    request = GetPlan(
        target=os.fsencode(target),
        cwd=cwd,
        into=None if into is None else os.path.abspath(os.path.join(cwd, os.fsencode(into))),
        inputs=dirs,
        env=sorted(k for k in os.environ if "\0" not in k),
        remote=remote,
    )
    try:
        return client.call(request, expect=PlanReply)
    except FrameError:  # (only the registry's records can make a request this big)
        if remote is None:
            raise
        n = len(remote.ancestry.jobs)
        raise RoarError(
            f"the registry's lineage of {target} ({n} jobs) is too large to plan at once",
            "reproduce an artifact further upstream first",
        ) from None


def from_registry(target: str) -> RemoteLineage:
    """The lineage of an artifact or job the local store does not have, from the team registry
    (signed as `roarctl show` signs: your own and your teams' records too)."""
    from roar.registry import Ancestry
    from roarctl import remote

    with remote.Remote.open() as reg:
        kind, key = reg.find(target)
        if kind == "session":
            raise RoarError(
                f"'{target}' is a session in the registry at {reg.url}: reproducing from the "
                "registry starts at an artifact or a job",
                f"give one of its jobs' ids (roarctl dag {key[:12]})",
            )
        found = reg.get(f"/{kind}s/{key}/ancestry", Ancestry)
        return RemoteLineage(url=reg.url, ancestry=found)


class Reproduction:
    def __init__(
        self,
        client: Client,
        p: PlanReply,
        note: Callable[[str], None],
        keep_going: bool = False,
        from_scratch: bool = False,
    ) -> None:
        self.client = client
        self.plan = p
        self.note = note
        self.keep_going = keep_going
        self.from_scratch = from_scratch
        self.ws = Workspace(p, client, note)
        self.envs: list[Path] = []  # the environment made for each of the plan's interpreters
        self.secrets: dict[str, str] = {}
        self.diverged: set[str] = set()  # jobs that differed or failed (--keep-going)

    def run(self) -> Report:
        from roarctl import venvs

        p = self.plan
        self.secrets = self._secrets()
        self.ws.prepare()
        for interp in p.interpreters:  # every environment first: a failure here runs nothing
            self.envs.append(venvs.environment(interp, p.into_raw, self.note)[0])
        session = self._session()
        results: list[JobResult] = []
        stopped = False
        for job in p.jobs:
            if stopped:
                results.append(JobResult(job.id, job.ref, job.command, "not run"))
                continue
            result = self._one(job)
            results.append(result)
            if result.verdict in ("differs", "failed"):
                self.diverged.add(job.id)
            self.note(_line(result))
            if result.verdict in ("differs", "failed") and not self.keep_going:
                stopped = True
        return self._report(results, session)

    # ------------------------------------------------------------ one job

    def _one(self, job: PlanJob) -> JobResult:
        ws = self.ws
        ws.checkout(job.commit)
        outputs = {ws.path(o): o for o in job.outputs}
        if not self.from_scratch and outputs:
            now = ws.hashes(outputs)
            if all(now.get(path) == o.hash for path, o in outputs.items()):
                ws.made(job.outputs, now)
                checks = [OutputCheck(o.path, o.hash, o.hash) for o in job.outputs]
                return JobResult(job.id, job.ref, job.command, "skipped", outputs=checks)
        problems = ws.place(job.inputs, self.diverged)
        if problems:
            reason = "its inputs are not all there: " + "; ".join(problems)
            return JobResult(job.id, job.ref, job.command, "failed", reason=reason)
        ws.clear(job.outputs, job.inputs)
        argv, env = self._command(job)
        cwd = os.path.normpath(os.path.join(ws.dir, os.fsencode(job.cwd)))
        from roarctl.run import Runner

        try:
            run = Runner(on_warning=self._warning).run(argv, cwd=cwd, env=env, kind=job.kind)
        except RoarError as exc:
            return JobResult(job.id, job.ref, job.command, "failed", reason=exc.message)
        new = run.job_id or None
        if new is not None and run.record == "stored":
            self.client.call(
                LabelOp(cwd=ws.dir, op="set", target=new.encode(), pairs={"reproduces": job.id}),
                expect=LabelReply,
            )
        found = ws.hashes(outputs)
        ws.made(job.outputs, found)
        checks = [OutputCheck(o.path, o.hash, found.get(path)) for path, o in outputs.items()]
        result = JobResult(
            job.id, job.ref, job.command, "identical", job=new, exit_code=run.exit_code
        )
        result.outputs = checks
        if job.exit_code is not None and run.exit_code != job.exit_code:
            result.verdict = "failed"
            result.reason = f"exit {run.exit_code}, recorded exit {job.exit_code}"
        elif any(c.reproduced != c.recorded for c in checks):
            first = next(c for c in checks if c.reproduced != c.recorded)
            result.verdict = "differs"
            result.reason = (
                f"{first.path}: not made"
                if first.reproduced is None
                else f"{first.path}: {first.reproduced[:12]}, recorded {first.recorded[:12]}"
            )
        stored = new is not None and run.record == "stored"
        # (the original of a plan from the registry is not in roard's store: nothing to diff)
        if result.verdict != "identical" and stored and self.plan.registry is None:
            assert new is not None
            diff = self.client.call(
                Diff(a=job.id.encode(), b=new.encode(), cwd=ws.dir), expect=DiffReply
            )
            result.diff = diff.entries
        return result

    def _command(self, job: PlanJob) -> tuple[list[str], dict[str, str]]:
        """The recorded argv and environment, pointed at the reproduction: the directory for
        the base, the made environments for the recorded interpreters, the secrets filled."""
        ws = self.ws
        ran_in = os.path.normpath(os.path.join(self.plan.base or "/", job.cwd))
        pythons: dict[str, str] = {}  # an argument naming a recorded interpreter -> its env's
        places: dict[str, str] = {}  # its environment's bin/ and prefix -> the made one's
        bins = []
        for index in job.interpreters:
            interp, root = self.plan.interpreters[index], self.envs[index]
            python = str(root / "bin" / os.path.basename(interp.path))
            pythons[interp.path] = pythons[os.path.relpath(interp.path, ran_in)] = python
            recorded_bin = os.path.dirname(interp.path)
            prefix = os.path.dirname(recorded_bin)
            recorded_venv = self.plan.envs[job.env].get("VIRTUAL_ENV")
            if recorded_venv == prefix or os.path.isfile(os.path.join(prefix, "pyvenv.cfg")):
                places[recorded_bin] = str(root / "bin")  # never a system bin/ (/usr/bin)
                places[prefix] = str(root)
            bins.append(str(root / "bin"))

        def value(name: str, text: str) -> str:
            if name == "PATH" or name == "VIRTUAL_ENV":  # the recorded venv -> the made one
                text = ":".join(places.get(part, part) for part in text.split(":"))
            return ws.map_text(text)

        env = {name: value(name, text) for name, text in self.plan.envs[job.env].items()}
        env.update({name: self.secrets[name] for name in job.secrets})
        argv = [pythons.get(a) or ws.map_text(a) for a in job.argv]
        path = env.get("PATH", os.defpath).split(":")
        env["PATH"] = ":".join([*(b for b in bins if b not in path), *path])
        if "PWD" in env:
            env["PWD"] = os.fsdecode(os.path.normpath(os.path.join(ws.dir, os.fsencode(job.cwd))))
        return argv, env

    def _secrets(self) -> dict[str, str]:
        """Values of the redacted variables: the caller's environment, else the project's."""
        names = sorted({n for j in self.plan.jobs for n in j.secrets})
        found = {n: os.environ[n] for n in names if n in os.environ}
        for name in names:
            if name not in found and name in self.plan.from_project and self.plan.project_raw:
                reply = self.client.call(
                    EnvOp(cwd=self.plan.project_raw, op="get", name=name), expect=EnvReply
                )
                found[name] = reply.values[name]
        missing = [n for n in names if n not in found]
        if missing:
            raise RoarError(f"no value for the secret(s) {', '.join(missing)}")
        return found

    def _session(self) -> int:
        """A new session for the reproduction, in the directory's own project."""
        if self.plan.checkout == "none":
            from roar.protocol import Init, InitDone

            self.client.call(Init(cwd=self.ws.dir), expect=InitDone)
        return self.client.call(Reset(cwd=self.ws.dir), expect=SessionInfo).session

    def _warning(self, text: str, at_risk: bool) -> None:
        if at_risk:
            self.note(f"warning: {text}")

    # ------------------------------------------------------------ the verdict

    def _report(self, results: list[JobResult], session: int) -> Report:
        p = self.plan
        by_job = {r.id: r for r in results}
        wanted = []
        for w in p.wanted:
            r = by_job.get(w.producer or "")
            check = next((c for c in (r.outputs if r else []) if c.path == w.path), None)
            wanted.append(OutputCheck(w.path, w.hash, check.reproduced if check else None))
        good = all(
            by_job[w.producer or ""].verdict in ("identical", "skipped")
            for w in p.wanted
            if (w.producer or "") in by_job
        ) and all(c.reproduced == c.recorded for c in wanted)
        if not p.wanted:  # a job that wrote nothing: it ran as recorded
            good = all(r.verdict in ("identical", "skipped") for r in results)
        first = next((r for r in results if r.verdict in ("differs", "failed")), None)
        return Report(
            target=p.target,
            kind=p.kind,
            label=p.label,
            into=p.into,
            verdict="identical" if good else "differs",
            jobs=results,
            wanted=wanted,
            first_divergence=None if first is None else f"{first.ref or first.id}: {first.reason}",
            session=session,
            environments={i.path: str(e) for i, e in zip(p.interpreters, self.envs, strict=True)},
            plan=p,
        )


def _line(r: JobResult) -> str:
    name = f"{r.ref or '-'} {r.id[:12]}"
    if r.verdict == "skipped":
        return f"{name} skipped: its outputs are already there with the recorded hashes"
    if r.verdict == "identical":
        n = len(r.outputs)
        return f"{name} identical ({n} output{'s' * (n != 1)}) -> job {r.job}"
    return f"{name} {r.verdict}: {r.reason}" + (f" -> job {r.job}" if r.job else "")
