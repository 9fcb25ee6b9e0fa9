"""The team registry (GLaaS): auth login|whoami|logout|web, and register."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from roarctl.commands.common import CONTEXT, client, emit_json, json_option
from roarctl.errors import RoarError

if TYPE_CHECKING:
    from roar.keys import Signing

PINNED = "registry-key.pub"  # in roar's config directory: the agent key `auth login` checked


@click.group(context_settings=CONTEXT)
def auth() -> None:
    """Your identity at the team registry: an SSH key the registry's admin has added
    (`glaas admin user add NAME --key ...`). Requests are signed with it: from ssh-agent, or
    from the key file in registry.key.

    \b
    Examples:
      roarctl auth login https://glaas.example.org
      roarctl auth login --key ~/.ssh/id_ed25519
      roarctl auth whoami
    """


def _pinned() -> Path:
    from roar.paths import paths

    return paths().config_dir / PINNED


@auth.command(context_settings=CONTEXT)
@click.argument("url", required=False)
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False),
    help="A private key file, or a .pub whose key is in ssh-agent (default: the agent's first).",
)
@json_option
def login(url: str | None, key_file: str | None, as_json: bool) -> None:
    """Check your key against the registry (URL, or registry.url) and use it from now on.

    \b
    Examples:
      roarctl auth login https://glaas.example.org
      roarctl auth login --key ~/.ssh/id_ed25519.pub
    """
    from roar import keys
    from roar.config import UNSIGNED
    from roar.errors import RoarFailure
    from roar.registry import Me
    from roar.remote import Registry, check_url
    from roarctl import remote
    from roarctl.commands.config import set_user_value

    cfg = remote.settings()
    try:
        base = check_url(url) if url else cfg.url
    except RoarFailure as exc:
        raise RoarError(exc.message, exc.hint, exit_code=2) from None
    if not base:
        raise RoarError(
            "which registry? registry.url is not set",
            "roarctl auth login https://glaas.example.org",
            exit_code=2,
        )
    if key_file:
        setting = os.path.abspath(os.path.expanduser(key_file))
    else:
        setting = "" if cfg.key in ("", UNSIGNED) else cfg.key
    try:
        signing = keys.signing(setting)
    except RoarFailure as exc:
        raise remote.failure(exc) from None
    assert signing is not None  # the setting is never UNSIGNED here
    with remote.Remote(Registry(base, signing)) as reg:
        try:
            me = reg.call("GET", "/auth/me", Me)
        except RoarError as exc:
            if exc.code == "unauthorized":
                raise RoarError(
                    f"{base} does not accept the key {signing.key.fingerprint}: {exc.message}",
                    "ask the registry's admin to add it: glaas admin user add NAME "
                    f"--key '{signing.key.openssh}'",
                ) from None
            raise
    if url:
        set_user_value("registry.url", base)
    if not setting:  # an agent key: keep which one, so that a reordered agent changes nothing
        from roar.paths import private_dir, private_umask

        pinned = _pinned()
        with private_umask():
            private_dir(pinned.parent)
            pinned.write_text(signing.key.openssh + "\n")
        setting = str(pinned)
    set_user_value("registry.key", setting)
    if as_json:
        import msgspec

        emit_json({"url": base, "key_file": setting, **msgspec.to_builtins(me)})
        return
    teams = ", ".join(me.teams) or "none"
    click.echo(
        f"roar: logged in to {base} as {me.user} (key {me.key}, {signing.source}); "
        f"teams: {teams}; new records are {cfg.visibility or me.default_visibility}"
    )


@auth.command(context_settings=CONTEXT)
@json_option
def whoami(as_json: bool) -> None:
    """Who the registry says you are (a signed request to it).

    \b
    Example:
      roarctl auth whoami --json
    """
    from roar.config import UNSIGNED
    from roar.registry import Me
    from roarctl import remote

    cfg = remote.settings()
    if cfg.key == UNSIGNED:
        raise RoarError("not logged in (registry.key is none)", "roarctl auth login")
    with remote.Remote.open(signing=_signing(cfg.key)) as reg:
        me = reg.call("GET", "/auth/me", Me)
        base = reg.url
    if as_json:
        import msgspec

        emit_json({"url": base, **msgspec.to_builtins(me)})
        return
    click.echo(f"{me.user} at {base}")
    click.echo(f"key:        {me.key}")
    click.echo(f"teams:      {', '.join(me.teams) or '(none)'}")
    click.echo(f"visibility: {cfg.visibility or me.default_visibility} (of what you register)")


def _signing(setting: str) -> Signing | None:
    from roar import keys
    from roar.errors import RoarFailure
    from roarctl import remote

    try:
        return keys.signing(setting)
    except RoarFailure as exc:
        raise remote.failure(exc) from None


@auth.command(context_settings=CONTEXT)
def logout() -> None:
    """Stop signing registry requests (registry.key becomes none): roard's background
    registration stops, reads see public records only. `roarctl auth login` undoes it.
    """
    from roar.config import UNSIGNED
    from roarctl.commands.config import set_user_value

    path = set_user_value("registry.key", UNSIGNED)
    _pinned().unlink(missing_ok=True)
    click.echo(f"roar: logged out: registry.key = none in {path}")


@auth.command(context_settings=CONTEXT)
@json_option
def web(as_json: bool) -> None:
    """A link that logs your browser in to the registry's web pages (it expires soon).

    \b
    Example:
      roarctl auth web
    """
    import msgspec

    from roar.config import UNSIGNED
    from roarctl import remote

    class WebLink(msgspec.Struct):  # what the registry answers (its web pages' side)
        url: str
        expires: float

    cfg = remote.settings()
    if cfg.key == UNSIGNED:
        raise RoarError("not logged in (registry.key is none)", "roarctl auth login")
    with remote.Remote.open(signing=_signing(cfg.key)) as reg:
        try:
            link = reg.call("POST", "/auth/web-link", WebLink)
        except RoarError as exc:
            if exc.code == "not-found":
                raise RoarError(
                    f"the registry at {reg.url} has no web login",
                    "it may be older than this roar: open its pages without logging in",
                ) from None
            raise
        url = link.url if "://" in link.url else reg.url + "/" + link.url.lstrip("/")
    if as_json:
        emit_json({"url": url, "expires": link.expires})
    else:
        click.echo(url)


@click.command(context_settings=CONTEXT)
@click.argument("targets", nargs=-1)
@click.option("--session", is_flag=True, help="The current session's jobs.")
@click.option("--all", "all_jobs", is_flag=True, help="Every job roar recorded.")
@click.option(
    "--visibility",
    type=click.Choice(["private", "team", "public"]),
    help="Who may read them (default: registry.visibility, else the registry's).",
)
@json_option
def register(
    targets: tuple[str, ...], session: bool, all_jobs: bool, visibility: str | None, as_json: bool
) -> None:
    """Register the lineage of each TARGET (an artifact, a job, @N, a path: its whole
    upstream) with the team registry, and print each target's registry URL. roard sends the
    jobs (the same way it does in the background with registry.auto); jobs registered before
    are not sent again.

    \b
    Examples:
      roarctl register metrics.json
      roarctl register --session --visibility team
      roarctl config set registry.auto true      # from now on, every finished job
    """
    from roar.protocol import Progress, Register, Registered
    from roarctl import messages
    from roarctl.client import checked

    if not (targets or session or all_jobs):
        raise RoarError("name what to register: TARGET..., --session or --all", exit_code=2)
    request = Register(
        cwd=os.getcwdb(),
        targets=[os.fsencode(t) for t in targets],
        session=session,
        all=all_jobs,
        visibility=visibility,  # type: ignore[arg-type]
        agent=os.environ.get("SSH_AUTH_SOCK") or None,
    )
    bar = messages.ProgressBar(unit="jobs")
    with client() as c:
        c.send(request)
        bar.start()
        try:
            while True:
                reply = c.recv()
                if isinstance(reply, Progress):
                    bar.update(reply.label, reply.done, reply.total)
                    continue
                break
        finally:
            bar.close()
    done = checked(reply, Registered, "Register")
    if as_json:
        emit_json(done)
        return
    before = done.jobs - done.sent
    messages.note(
        f"registered {done.jobs} job(s) at {done.url}: {done.sent} sent ({done.new} new to it)"
        + (f", {before} registered before" if before else "")
    )
    for line in done.skipped:
        messages.warn(line)
    for t in done.targets:
        click.echo(f"{t.target}  {t.url}")


COMMANDS = [auth, register]
