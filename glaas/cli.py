"""`glaas`: serve the registry, and administer its accounts, teams and default visibility.

Both work on the same database: `--db URL` (PostgreSQL for a team, `postgresql://...`), else the
embedded SQLite file under $XDG_DATA_HOME/glaas/. Errors are one line (and a hint) on stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from roar.errors import Invalid, RoarFailure

T = TypeVar("T")
DB_HELP = "postgresql://user@host/db, or a SQLite file (default: $XDG_DATA_HOME/glaas/glaas.db)"


def _fail(e: RoarFailure) -> None:
    click.echo(f"glaas: {e.message}", err=True)
    if e.hint:
        click.echo(f"  {e.hint}", err=True)
    sys.exit(1)


def _with_store(db: str | None, work: Callable[[Any], Awaitable[T]]) -> T:
    from glaas.store import open_store

    async def main() -> T:
        store = await open_store(db, pool_size=2)
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except RoarFailure as e:
        _fail(e)
        raise AssertionError("unreachable") from e


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="roar", prog_name="glaas")
def main() -> None:
    """GLaaS: the lineage registry for roar (stores lineage by content hash, never data)."""


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(value: str) -> float:
    """Seconds in '14d', '36h', '90m', '600s' or '600'."""
    v = value.strip().lower()
    unit = _UNITS.get(v[-1:], 0)
    number = v[:-1] if unit else v
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        seconds = -1
    if not seconds > 0 or seconds == float("inf"):
        raise Invalid(f"not a duration: {value!r}", "e.g. 14d, 36h, 90m or 600s")
    return seconds


@main.command()
@click.option("--db", envvar="GLAAS_DB", help=DB_HELP)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--access-log/--no-access-log", default=False, help="log every request")
@click.option(
    "--public-url",
    envvar="GLAAS_PUBLIC_URL",
    help="where people reach it, e.g. https://glaas.example.org (login links; Secure cookies)",
)
@click.option(
    "--approval-ttl",
    default="14d",
    show_default=True,
    help="how long a request's approval lasts unless claimed: 14d, 36h, 90m, 600s",
)
@click.option(
    "--webhook",
    "webhooks",
    multiple=True,
    envvar="GLAAS_WEBHOOKS",
    help="POST each training request's state change here (Slack-compatible; repeatable)",
)
@click.option(
    "--webhook-secret",
    envvar="GLAAS_WEBHOOK_SECRET",
    help="sign webhooks: X-Glaas-Signature: sha256=HMAC-SHA256(secret, "
    "f'{X-Glaas-Delivery}.{X-Glaas-Timestamp}.' + body), hex (README: Webhooks)",
)
def serve(
    db: str | None,
    host: str,
    port: int,
    workers: int,
    access_log: bool,
    public_url: str | None,
    approval_ttl: str,
    webhooks: tuple[str, ...],
    webhook_secret: str | None,
) -> None:
    """Serve the registry: web pages at http://HOST:PORT/, the API under /api/v1.

    \b
    glaas serve                                   # SQLite, 127.0.0.1:8765
    glaas serve --db postgresql://glaas@/glaas --workers 4
    glaas serve --public-url https://glaas.example.org   # behind a TLS proxy
    glaas serve --approval-ttl 7d --webhook https://hooks.slack.com/services/...
    """
    import uvicorn

    from glaas.app import DB_ENV, HOOKS_ENV, SECRET_ENV, TTL_ENV, URL_ENV, create_app
    from glaas.store import default_url, describe

    db = db or default_url()

    async def ready(store: Any) -> None:  # migrate once, before any worker starts
        return None

    if public_url and not public_url.startswith(("http://", "https://")):
        _fail(Invalid(f"not an http(s) URL: {public_url!r}", "e.g. https://glaas.example.org"))
    try:
        ttl = duration(approval_ttl)
    except Invalid as e:
        _fail(e)
    for n, url in enumerate(webhooks, 1):
        if not url.startswith(("http://", "https://")):  # not shown: its path may be a secret
            _fail(Invalid(f"webhook {n} is not an http(s) URL", "e.g. https://hooks.slack.com/..."))
    _with_store(db, ready)
    click.echo(f"glaas: serving http://{host}:{port}/ ({describe(db)})", err=True)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "access_log": access_log,
        "log_level": "info",
        "server_header": False,
        # uvloop, not asyncio's loop: with --workers the listening socket is made by uvicorn's
        # parent with proto 0, and asyncio then leaves Nagle on for its connections (a response's
        # head and body 40 ms apart: measured 44 ms per look-up); uvloop sets TCP_NODELAY.
        "loop": "uvloop",
        "http": "glaas.http:Protocol",  # httptools, a response sent in one write
    }
    if workers == 1:
        app = create_app(
            db,
            public_url=public_url,
            approval_ttl=ttl,
            webhooks=list(webhooks),
            webhook_secret=webhook_secret,
        )
        uvicorn.run(app, **options)
    else:
        os.environ[DB_ENV] = db
        if public_url:
            os.environ[URL_ENV] = public_url
        os.environ[TTL_ENV] = repr(ttl)
        os.environ[HOOKS_ENV] = "\n".join(webhooks)
        if webhook_secret:
            os.environ[SECRET_ENV] = webhook_secret
        uvicorn.run("glaas.app:from_env", factory=True, workers=workers, **options)


@main.group()
@click.option("--db", envvar="GLAAS_DB", help=DB_HELP)
@click.pass_context
def admin(ctx: click.Context, db: str | None) -> None:
    """Accounts, SSH keys, teams and the default visibility of new records."""
    ctx.obj = db


@admin.group()
def user() -> None:
    """Users and their SSH keys."""


def _keys(key: tuple[str, ...], key_file: tuple[str, ...], agent: bool) -> list[Any]:
    from roar import sshsig

    lines = list(key)
    for path in key_file:
        try:
            with open(os.path.expanduser(path)) as f:
                lines.extend(ln for ln in f if ln.strip() and not ln.startswith("#"))
        except OSError as e:
            raise Invalid(f"cannot read {path}: {e.strerror}") from e
    keys = [sshsig.parse_public_key(line) for line in lines]
    if agent:
        try:
            found = sshsig.agent_keys()
        except (sshsig.AgentError, OSError) as e:
            raise Invalid(f"cannot ask the ssh-agent: {e}") from e
        if not found:
            raise Invalid("the ssh-agent has no ed25519, ecdsa or rsa key", "ssh-add your key")
        keys.extend(k for k, _ in found)
    return keys


@user.command("add")
@click.argument("name")
@click.option("--key", multiple=True, help="a public key: 'ssh-ed25519 AAAA... comment'")
@click.option("--key-file", multiple=True, help="a .pub or authorized_keys file")
@click.option(
    "--ssh-agent", "ssh_agent", is_flag=True, help="add the keys of the running ssh-agent"
)
@click.option(
    "--agent",
    "kind",
    flag_value="agent",
    help="an automated account: files, claims, completes requests, never approves (--kind agent)",
)
@click.option(
    "--kind",
    type=click.Choice(["human", "agent"]),
    default="human",
    show_default=True,
    help="agent: an automated account (files, claims and completes requests, never approves)",
)
@click.pass_obj
def user_add(
    db: str | None,
    name: str,
    key: tuple[str, ...],
    key_file: tuple[str, ...],
    ssh_agent: bool,
    kind: str,
) -> None:
    """Create user NAME with one or more SSH public keys.

    \b
    glaas admin user add alice --key "$(cat ~/.ssh/id_ed25519.pub)"
    glaas admin user add bob --ssh-agent
    glaas admin user add trainer-bot --agent --key-file bot.pub
    """
    # ASCII only: a reviewer named with a look-alike letter (Cyrillic o in "bob") reads as another
    if not (name.isascii() and name.replace("-", "").replace("_", "").replace(".", "").isalnum()):
        _fail(Invalid(f"not a user name: {name!r}", "ASCII letters, digits, '-', '_' and '.'"))
    try:
        keys = _keys(key, key_file, ssh_agent)
    except RoarFailure as e:
        _fail(e)
    if not keys:
        _fail(Invalid("a user needs a key", "give --key, --key-file or --ssh-agent"))

    async def work(store: Any) -> None:
        await store.add_user(name, agent=kind == "agent")
        for k in keys:
            await store.add_key(name, k.fingerprint, k.openssh)

    _with_store(db, work)
    for k in keys:
        click.echo(f"{name}: {k.fingerprint}")


@user.command("key")
@click.argument("action", type=click.Choice(["add", "remove"]))
@click.argument("name")
@click.argument("key")
@click.pass_obj
def user_key(db: str | None, action: str, name: str, key: str) -> None:
    """Add a public key to NAME, or remove one (by key or fingerprint)."""
    from roar import sshsig

    try:
        parsed = None if key.startswith("SHA256:") else sshsig.parse_public_key(key)
    except RoarFailure as e:
        _fail(e)
    if action == "add" and parsed is None:
        _fail(Invalid("give the public key itself to add it"))

    async def work(store: Any) -> None:
        if action == "add":
            assert parsed is not None
            await store.add_key(name, parsed.fingerprint, parsed.openssh)
        else:
            await store.remove_key(name, parsed.fingerprint if parsed else key)

    _with_store(db, work)


@user.command("remove")
@click.argument("name")
@click.pass_obj
def user_remove(db: str | None, name: str) -> None:
    """Disable NAME: their keys and team memberships go, their records stay."""

    async def work(store: Any) -> None:
        await store.disable_user(name)

    _with_store(db, work)


@user.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def user_list(db: str | None, as_json: bool) -> None:
    """Users, their key fingerprints and teams."""

    async def work(store: Any) -> Any:
        return await store.users(), await store.agents()

    users, agents = _with_store(db, work)
    if as_json:
        out = [
            {"name": n, "keys": k, "teams": t, "kind": "agent" if n in agents else "human"}
            for n, k, t in users
        ]
        click.echo(json.dumps(out, indent=2))
        return
    for name, keys, teams in users:
        kind = " (agent)" if name in agents else ""
        click.echo(f"{name}{kind}\tteams: {', '.join(teams) or '-'}")
        for fp in keys:
            click.echo(f"  {fp}")


@admin.group()
def team() -> None:
    """Teams: records with visibility "team" are readable by the team's members."""


@team.command("add")
@click.argument("name")
@click.argument("members", nargs=-1)
@click.pass_obj
def team_add(db: str | None, name: str, members: tuple[str, ...]) -> None:
    """Create team NAME, optionally with MEMBERS."""

    async def work(store: Any) -> None:
        await store.add_team(name)
        for m in members:
            await store.add_member(name, m)

    _with_store(db, work)


@team.command("member")
@click.argument("action", type=click.Choice(["add", "remove"]))
@click.argument("team_name", metavar="TEAM")
@click.argument("user_name", metavar="USER")
@click.pass_obj
def team_member(db: str | None, action: str, team_name: str, user_name: str) -> None:
    """Add USER to TEAM, or remove them."""

    async def work(store: Any) -> None:
        if action == "add":
            await store.add_member(team_name, user_name)
        else:
            await store.remove_member(team_name, user_name)

    _with_store(db, work)


@team.command("list")
@click.pass_obj
def team_list(db: str | None) -> None:
    """Teams and their members."""

    async def work(store: Any) -> Any:
        return await store.teams()

    for name, members in _with_store(db, work):
        click.echo(f"{name}\t{', '.join(members) or '-'}")


@admin.command()
@click.argument("value", required=False, type=click.Choice(["private", "team", "public"]))
@click.pass_obj
def visibility(db: str | None, value: str | None) -> None:
    """Show, or set, the visibility of records registered without one (default: private)."""

    async def work(store: Any) -> str:
        if value is not None:
            await store.set_setting("default_visibility", value)
        return str(await store.default_visibility())

    click.echo(_with_store(db, work))


@admin.command()
@click.pass_obj
def migrate(db: str | None) -> None:
    """Bring the database's schema up to date (serve does this too)."""
    from glaas.store.migrate import migrations

    async def work(store: Any) -> int:
        return len(migrations(store.backend))

    click.echo(f"schema version {_with_store(db, work)}")


@admin.group()
def price() -> None:
    """The price table that turns compute into cost (`roarctl compute report`)."""


@price.command("set")
@click.argument("resource")
@click.argument("value")
@click.pass_obj
def price_set(db: str | None, resource: str, value: str) -> None:
    """Set the hourly price of RESOURCE: cpu (per CPU-hour), gpu (any GPU without a price of
    its own) or gpu:MODEL (a GPU whose name contains MODEL, e.g. gpu:H100).

    \b
    glaas admin price set gpu:H100 2.49/h
    glaas admin price set cpu 0.04/h
    """
    from glaas.compute import parse_price

    try:
        parsed = parse_price(resource, value)
    except RoarFailure as e:
        _fail(e)

    async def work(store: Any) -> None:
        await store.set_price(parsed.resource, parsed.per_hour)

    _with_store(db, work)


@price.command("rm")
@click.argument("resource")
@click.pass_obj
def price_rm(db: str | None, resource: str) -> None:
    """Remove RESOURCE's price (its hours then cost nothing, and count as unpriced)."""

    async def work(store: Any) -> None:
        await store.remove_price(resource)

    _with_store(db, work)


@price.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def price_list(db: str | None, as_json: bool) -> None:
    """The price table, per hour."""

    async def work(store: Any) -> Any:
        return await store.prices()

    prices = _with_store(db, work)
    if as_json:
        click.echo(json.dumps([{"resource": p.resource, "per_hour": p.per_hour} for p in prices]))
        return
    for p in prices:
        click.echo(f"{p.resource}\t{p.per_hour:g}/h")
