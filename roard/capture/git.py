"""The git state of the directory a run started in: commit, branch, remotes, dirty files.

pygit2 takes ~70 ms to import, so it is imported inside git_state(). (Finding a project's root
without pygit2 is roar.project.find_root.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from roar.model import DirtyFile, DirtyStatus, GitState
from roar.redact import redact_text

if TYPE_CHECKING:
    import pygit2


def _show(name: str) -> str:
    """pygit2 decodes non-UTF-8 names with surrogateescape, which msgpack cannot carry: show
    them with backslash escapes, as protocol.show_path does."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _status_name(flags: int) -> DirtyStatus:
    """One word for a pygit2 status bit set; the most telling bit wins."""
    from pygit2.enums import FileStatus as F

    if flags & F.CONFLICTED:
        return "conflicted"
    if flags & (F.INDEX_DELETED | F.WT_DELETED):
        return "deleted"
    if flags & (F.INDEX_RENAMED | F.WT_RENAMED):
        return "renamed"
    if flags & (F.INDEX_TYPECHANGE | F.WT_TYPECHANGE):
        return "typechange"
    if flags & F.INDEX_NEW:
        return "added"
    if flags & F.WT_NEW:
        return "untracked"
    return "modified"


def _branch(repo: pygit2.Repository) -> str | None:
    if repo.head_is_detached:
        return None
    if repo.head_is_unborn:  # HEAD -> refs/heads/<name> which does not exist yet
        target = repo.references["HEAD"].target
        name = target if isinstance(target, str) else None
        return name.removeprefix("refs/heads/") if name else None
    return repo.head.shorthand


def git_state(path: str) -> GitState | None:
    """The state of the git repository containing path; None outside a work tree or on error.

    DirtyFile.hash is left None: the caller fills it from its hash cache.
    """
    try:
        import pygit2
        from pygit2.enums import FileStatus
    except ImportError:
        return None
    try:
        gitdir = pygit2.discover_repository(path)
        if gitdir is None:
            return None
        repo = pygit2.Repository(gitdir)
        if repo.is_bare or not repo.workdir:
            return None
        root = _show(repo.workdir.rstrip("/") or "/")
        commit = None if repo.head_is_unborn else str(repo.head.target)
        branch = _branch(repo)
        remotes = {_show(r.name): redact_text(_show(r.url or "")) for r in repo.remotes if r.name}
        dirty = [
            DirtyFile(path=_show(p), status=_status_name(int(flags)))
            for p, flags in sorted(repo.status(untracked_files="all", ignored=False).items())
            if not flags & FileStatus.IGNORED and flags != FileStatus.CURRENT
        ]
    except Exception:  # any libgit2/pygit2 failure: no git state, the run goes on
        return None
    return GitState(
        root=root, commit=commit, branch=branch, remotes=remotes, dirty=dirty, clean=not dirty
    )


def committed(root: str, commit: str, paths: list[str]) -> set[str] | None:
    """Which of `paths` (relative to the work tree at `root`) are in `commit`'s tree; None when
    the repository or the commit cannot be read (moved, deleted, garbage-collected)."""
    try:
        import pygit2

        tree = pygit2.Repository(root)[commit].peel(pygit2.Tree)
        return {p for p in paths if p in tree}
    except Exception:  # any libgit2/pygit2 failure: the caller cannot tell
        return None
