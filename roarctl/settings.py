"""Bookkeeping commands: env, label, collection, config, completion."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

import click

from roarctl.cli import CONTEXT, _client, _emit_json, _json_option, cli
from roarctl.errors import RoarError


@cli.group(context_settings=CONTEXT)
def env() -> None:
    """Persistent environment variables injected into this project's runs (values are shown
    redacted everywhere; `env get NAME` prints one value).

    \b
    Examples:
      roarctl env set WANDB_PROJECT=churn
      roarctl env list
    """


def _env(
    op: Literal["set", "get", "list", "unset"], name: str = "", value: str = ""
) -> dict[str, str]:
    from roar.protocol import EnvOp, EnvReply

    with _client() as c:
        request = EnvOp(cwd=os.getcwdb(), op=op, name=name, value=value)
        return c.call(request, expect=EnvReply).values


@env.command("set", context_settings=CONTEXT)
@click.argument("assignment", metavar="NAME=VALUE")
def env_set(assignment: str) -> None:
    """Set NAME=VALUE for every later run in this project."""
    name, sep, value = assignment.partition("=")
    if not sep or not name:
        raise RoarError(f"'{assignment}' is not NAME=VALUE", exit_code=2)
    _env("set", name, value)
    click.echo(f"roar: {name} set for this project's runs")


@env.command("get", context_settings=CONTEXT)
@click.argument("name")
def env_get(name: str) -> None:
    """Print the value of NAME."""
    click.echo(_env("get", name)[name])


@env.command("list", context_settings=CONTEXT)
@_json_option
def env_list(as_json: bool) -> None:
    """List the variables set for this project (values redacted)."""
    values = _env("list")
    if as_json:
        _emit_json(values)
        return
    if not values:
        click.echo("no variables set: roarctl env set NAME=VALUE")
    for name, value in values.items():
        click.echo(f"{name}={value}")


@env.command("unset", context_settings=CONTEXT)
@click.argument("name")
def env_unset(name: str) -> None:
    """Stop injecting NAME."""
    _env("unset", name)
    click.echo(f"roar: {name} unset")


@cli.group(context_settings=CONTEXT)
def label() -> None:
    """key=value labels on jobs and artifacts.

    \b
    Examples:
      roarctl label set model.pt stage=candidate owner=ana
      roarctl label get @3
      roarctl label rm model.pt stage
    """


def _label(
    op: Literal["set", "get", "rm"], target: str, pairs: dict[str, str], as_json: bool
) -> None:
    from roar.protocol import LabelOp, LabelReply

    with _client() as c:
        request = LabelOp(cwd=os.getcwdb(), op=op, target=target, pairs=pairs)
        reply = c.call(request, expect=LabelReply)
    if as_json:
        _emit_json(reply)
        return
    for k, v in reply.labels.items():
        click.echo(f"{k}={v}")


@label.command("set", context_settings=CONTEXT)
@click.argument("target")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@_json_option
def label_set(target: str, pairs: tuple[str, ...], as_json: bool) -> None:
    """Set labels on TARGET (job id, @N, artifact hash or path)."""
    parsed = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or not k:
            raise RoarError(f"'{p}' is not KEY=VALUE", exit_code=2)
        parsed[k] = v
    _label("set", target, parsed, as_json)


@label.command("get", context_settings=CONTEXT)
@click.argument("target")
@_json_option
def label_get(target: str, as_json: bool) -> None:
    """Show TARGET's labels."""
    _label("get", target, {}, as_json)


@label.command("rm", context_settings=CONTEXT)
@click.argument("target")
@click.argument("keys", nargs=-1, required=True)
@_json_option
def label_rm(target: str, keys: tuple[str, ...], as_json: bool) -> None:
    """Remove labels KEYS from TARGET."""
    _label("rm", target, dict.fromkeys(keys, ""), as_json)


@cli.group(context_settings=CONTEXT)
def collection() -> None:
    """Named groups of artifacts (e.g. a downloaded dataset).

    \b
    Examples:
      roarctl collection add imagenet-val data/val/*.jpg
      roarctl collection show imagenet-val
    """


def _collection(
    op: Literal["add", "show", "list"], name: str, targets: list[str], as_json: bool
) -> None:
    from roar.protocol import CollectionOp, CollectionReply
    from roarctl import render

    with _client() as c:
        request = CollectionOp(cwd=os.getcwdb(), op=op, name=name, targets=targets)
        reply = c.call(request, expect=CollectionReply)
    if as_json:
        _emit_json(reply.collections)
        return
    for cname, records in reply.collections.items():
        click.echo(f"{cname} ({len(records)} artifacts)")
        render.records(records, indent="  ")


@collection.command("add", context_settings=CONTEXT)
@click.argument("name")
@click.argument("targets", nargs=-1, required=True)
@_json_option
def collection_add(name: str, targets: tuple[str, ...], as_json: bool) -> None:
    """Add artifacts (paths, hashes) to collection NAME."""
    _collection("add", name, list(targets), as_json)


@collection.command("show", context_settings=CONTEXT)
@click.argument("name")
@_json_option
def collection_show(name: str, as_json: bool) -> None:
    """List the artifacts of collection NAME."""
    _collection("show", name, [], as_json)


@collection.command("list", context_settings=CONTEXT)
@_json_option
def collection_list(as_json: bool) -> None:
    """List all collections."""
    _collection("list", "", [], as_json)


@cli.command(context_settings=CONTEXT)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    Examples:
      eval "$(roarctl completion bash)"        # in ~/.bashrc
      roarctl completion fish > ~/.config/fish/completions/roarctl.fish
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover (click ships all three)
        raise RoarError(f"no completion for {shell}")
    prog = os.path.basename(sys.argv[0]) or "roarctl"
    click.echo(cls(cli, {}, prog, f"_{prog.upper()}_COMPLETE").source())


CONFIG_KEYS = {
    "filters.exclude": "globs of paths never recorded as inputs or outputs (user + project)",
    "filters.include": "globs kept even where a default rule would filter them (user + project)",
    "hygiene.committed_code_only": "refuse to run when the git tree has uncommitted changes",
    "log.level": "roard's log level: debug, info, warning or error (user only)",
}


def _config_files() -> tuple[Path, Path | None]:
    from roar import project
    from roar.paths import paths

    root = project.find_root(os.getcwdb())
    proj = Path(os.fsdecode(root)) / ".roar" / "config.toml" if root is not None else None
    return paths().config, proj


def _load(path: Path | None) -> dict:
    import tomllib

    if path is None or not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RoarError(f"cannot read {path}: {exc}", "fix or remove the file") from None


def _lookup(data: dict, key: str) -> object:
    section, _, name = key.partition(".")
    return data.get(section, {}).get(name)


def _effective() -> list[dict]:
    from roar.config import Config

    user_file, project_file = _config_files()
    user, proj = _load(user_file), _load(project_file)
    defaults = Config()
    rows = []
    for key in CONFIG_KEYS:
        section, _, name = key.partition(".")
        value, source = getattr(getattr(defaults, section), name), "default"
        if _lookup(user, key) is not None:
            value, source = _lookup(user, key), str(user_file)
        if _lookup(proj, key) is not None and key != "log.level":
            if key.startswith("filters.") and source != "default":
                value = [*value, *_lookup(proj, key)]  # type: ignore[misc]
                source += f" + {project_file}"
            else:
                value, source = _lookup(proj, key), str(project_file)
        rows.append({"key": key, "value": value, "source": source, "help": CONFIG_KEYS[key]})
    return rows


def _write_toml(path: Path, data: dict) -> None:
    """Our config holds only strings, booleans and lists of strings; their JSON forms are
    valid TOML values. Comments in the file are not kept."""
    import json

    lines = ["# roar configuration (see `roarctl config list`)"]
    for section, values in data.items():
        lines.append(f"\n[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


@cli.group(context_settings=CONTEXT)
def config() -> None:
    """Read and change roar's settings: your user config
    ($XDG_CONFIG_HOME/roar/config.toml) and the project's (.roar/config.toml).

    \b
    Examples:
      roarctl config list
      roarctl config set filters.exclude '/data/scratch/*' '/tmp/cache/*'
      roarctl config set hygiene.committed_code_only true
      roarctl config set --user log.level debug
    """


@config.command("list", context_settings=CONTEXT)
@_json_option
def config_list(as_json: bool) -> None:
    """Every documented key: its value, where it comes from, what it does."""
    rows = _effective()
    if as_json:
        _emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['key']} = {r['value']!r}  ({r['source']})\n    {r['help']}")


@config.command("get", context_settings=CONTEXT)
@click.argument("key", type=click.Choice(list(CONFIG_KEYS)))
@_json_option
def config_get(key: str, as_json: bool) -> None:
    """Print the effective value of KEY."""
    row = next(r for r in _effective() if r["key"] == key)
    _emit_json(row["value"]) if as_json else click.echo(row["value"])


@config.command("set", context_settings=CONTEXT)
@click.argument("key", type=click.Choice(list(CONFIG_KEYS)))
@click.argument("values", nargs=-1, required=True)
@click.option("--user", "scope", flag_value="user", help="Write your user config.")
@click.option("--project", "scope", flag_value="project", help="Write the project's config.")
def config_set(key: str, values: tuple[str, ...], scope: str | None) -> None:
    """Set KEY (lists take several VALUES; booleans true/false). Project keys go to the
    project's .roar/config.toml when inside a project, unless --user."""
    import msgspec

    from roar import project
    from roar.config import Config

    user_file, project_file = _config_files()
    if key == "log.level" or scope == "user" or (scope is None and project_file is None):
        target = user_file
    elif project_file is None:
        raise RoarError("not inside a project", "cd into a git repository, or use --user")
    else:
        project.init(os.getcwdb())  # creates .roar/ and keeps it out of git
        target = project_file
    section, _, name = key.partition(".")
    value: object
    if key.startswith("filters."):
        value = list(values)
    elif len(values) != 1:
        raise RoarError(f"{key} takes one value", exit_code=2)
    elif key.startswith("hygiene."):
        if values[0].lower() not in ("true", "false"):
            raise RoarError(f"{key} is true or false, not '{values[0]}'", exit_code=2)
        value = values[0].lower() == "true"
    else:
        value = values[0]
    data = _load(target)
    data.setdefault(section, {})[name] = value
    try:
        msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise RoarError(f"invalid value for {key}: {exc}", exit_code=2) from None
    if key == "log.level" and value not in ("debug", "info", "warning", "error"):
        raise RoarError("log.level is one of debug, info, warning, error", exit_code=2)
    _write_toml(target, data)
    click.echo(f"roar: {key} = {value!r} in {target}")
