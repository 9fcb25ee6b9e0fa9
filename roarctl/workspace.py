"""The reproduction directory: a fresh checkout of the recorded commit, and the files each job
needs in it, found by content hash.

The source is a clone, never a change to the user's repository: `git clone --local` of the
repository when it has the recorded commits (its objects are hard-linked, not copied, and
nothing is written in it: no worktree entry, no fetch, no index change), else a clone of the
recorded remote. Between jobs of different commits the clone checks out the next one (it is
ours). Every input a job reads in the directory is checked by hash before the job runs; one
that does not hold the recorded content is copied from a file that does (a root input's origin,
or an output an earlier job made), and one that nowhere does stops that job.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterable

from roar.protocol import Hashes, HashFiles, PlanIO, PlanReply, RootInput
from roarctl.client import Client
from roarctl.errors import RoarError

GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
MARKER = b"roar-reproduction"


class Workspace:
    def __init__(self, plan: PlanReply, client: Client, note: Callable[[str], None]) -> None:
        self.plan = plan
        self.client = client
        self.note = note
        self.dir = plan.into_raw
        self.base = plan.base_raw or b"/"
        self.head: str | None = None
        # content hash -> files known to hold it (verified again before each copy)
        self.copies: dict[str, list[bytes]] = {}
        for r in plan.roots:
            if r.origin_raw is not None:
                self.copies.setdefault(r.hash, []).append(r.origin_raw)

    # ------------------------------------------------------------ paths

    def path(self, io: PlanIO | RootInput) -> bytes:
        """Where a recorded file is in the reproduction: under the directory when it was under
        the base, else where it was."""
        raw = io.raw
        if raw == self.base or raw.startswith(self.base.rstrip(b"/") + b"/"):
            return os.path.join(self.dir, os.path.relpath(raw, self.base))
        return raw

    def map_text(self, value: str) -> str:
        """A recorded argument or environment value with the base's path written as the
        reproduction directory's (`:`-separated lists too, e.g. PATH, PYTHONPATH)."""
        base, into = os.fsdecode(self.base).rstrip("/"), os.fsdecode(self.dir).rstrip("/")
        if not base or base not in value:
            return value

        def one(part: str) -> str:
            if part == base or part.startswith(base + "/"):
                return into + part[len(base) :]
            if part.startswith("--") and "=" in part:  # --data=/base/x
                name, _, rest = part.partition("=")
                return f"{name}={one(rest)}"
            return part

        return ":".join(one(p) for p in value.split(":"))

    # ------------------------------------------------------------ the source

    @property
    def marker(self) -> bytes:
        """The file that makes a directory a reproduction's (only such a one is taken up
        again: a checkout is forced in it): in .git, or in .roar without a clone."""
        inner = b".roar" if self.plan.checkout == "none" else b".git"
        return os.path.join(self.dir, inner, MARKER)

    def prepare(self) -> bool:
        """Make the directory (a clone of the recorded source) or take up an earlier one;
        True when it was there already."""
        plan = self.plan
        if os.path.exists(self.dir) and not os.path.isdir(self.dir):
            raise RoarError(
                f"{plan.into} exists and is not a directory", "choose another with --into"
            )
        if os.path.isdir(self.dir) and os.listdir(self.dir):
            if not os.path.isfile(self.marker):
                raise RoarError(
                    f"{plan.into} exists and is not a reproduction directory",
                    "choose another with --into, or remove it",
                )
            if plan.checkout != "none":
                self._fetch_missing()
            return True
        parent = os.path.dirname(self.dir.rstrip(b"/"))
        os.makedirs(parent, exist_ok=True)
        repo = plan.repository or ""
        into = os.fsdecode(self.dir)
        if plan.checkout == "none":
            os.makedirs(os.path.join(self.dir, b".roar"), exist_ok=True)
        elif plan.checkout == "local":
            self.note(f"cloning {repo} (local, hard-linked) into {plan.into}")
            self._git(
                ["clone", "--quiet", "--no-checkout", "--local", "--", repo, into], cwd=parent
            )
        else:  # ("--": a remote from someone else's record is never taken as an option)
            self.note(f"cloning {repo} into {plan.into}")
            self._git(["clone", "--quiet", "--no-checkout", "--", repo, into], cwd=parent)
        with open(self.marker, "w") as f:
            f.write(f"roar reproduction of {plan.target} from {plan.base}\n")
        return False

    def _fetch_missing(self) -> None:
        commits = {j.commit for j in self.plan.jobs if j.commit}
        missing = [c for c in commits if not self._has(c)]
        if missing and self.plan.repository:
            self._git(["fetch", "--quiet", "--", self.plan.repository, *missing])

    def _has(self, commit: str) -> bool:
        proc = subprocess.run(
            ["git", "-C", self.dir, "cat-file", "-e", f"{commit}^{{commit}}"],
            capture_output=True,
            check=False,
            env={**os.environ, **GIT_ENV},
        )
        return proc.returncode == 0

    def checkout(self, commit: str | None) -> None:
        """The job's commit in the directory (files the jobs made stay where git does not
        track them; every input is checked by hash after this)."""
        if commit is None or self.plan.checkout == "none" or commit == self.head:
            return
        self._git(["checkout", "--quiet", "--force", "--detach", commit])
        self.head = commit

    def _git(self, args: list[str], cwd: bytes | None = None) -> None:
        cmd = ["git", *args] if cwd is not None else ["git", "-C", os.fsdecode(self.dir), *args]
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **GIT_ENV},
        )
        if proc.returncode != 0:
            raise RoarError(f"git {args[0]} failed: {proc.stderr.strip() or proc.stdout.strip()}")

    # ------------------------------------------------------------ files, by hash

    def hashes(self, files: Iterable[bytes]) -> dict[bytes, str]:
        """Content hashes of these files (those that exist), through roard's hash cache."""
        wanted = sorted(set(files))
        if not wanted:
            return {}
        reply = self.client.call(HashFiles(paths=wanted), expect=Hashes)
        return {path: digest for path, digest, _ in reply.found}

    def place(self, inputs: list[PlanIO], diverged: set[str]) -> list[str]:
        """Put every input where the job reads it, with its recorded content; the reasons it
        cannot (an empty list: all are in place). An input a job of `diverged` made is taken as
        that job left it (--keep-going goes on with what was reproduced)."""
        inputs = [i for i in inputs if i.producer not in diverged]
        where = {id(i): self.path(i) for i in inputs}
        now = self.hashes(where.values())
        wrong = [i for i in inputs if now.get(where[id(i)]) != i.hash]
        if not wrong:
            return []
        sources = self.hashes(p for i in wrong for p in self.copies.get(i.hash, []))
        problems = []
        for i in wrong:
            target = where[id(i)]
            origin = next(
                (p for p in self.copies.get(i.hash, []) if sources.get(p) == i.hash), None
            )
            if not i.inside:
                why = "has other content" if os.path.exists(target) else "is missing"
                problems.append(f"{i.path} (outside the repository) {why}")
            elif origin is None:
                problems.append(f"{i.path} ({i.hash[:12]}) is nowhere with that content")
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if os.path.lexists(target):
                    os.unlink(target)
                shutil.copy2(origin, target)
        return problems

    def clear(self, outputs: list[PlanIO], inputs: list[PlanIO]) -> None:
        """Remove what a job is about to make (so what is there after it ran, it made), but
        never a file it also reads or appends to."""
        keep = {i.raw for i in inputs}
        for o in outputs:
            if not o.inside or o.previous is not None or o.raw in keep:
                continue
            target = self.path(o)
            if os.path.isfile(target) or os.path.islink(target):
                os.unlink(target)

    def made(self, outputs: list[PlanIO], found: dict[bytes, str]) -> None:
        """Remember the outputs a job made with their recorded content, as sources for later
        jobs' inputs."""
        for o in outputs:
            target = self.path(o)
            if found.get(target) == o.hash:
                self.copies.setdefault(o.hash, []).insert(0, target)
