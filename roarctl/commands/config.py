"""config: roar's settings, in your user config and the project's .roar/config.toml."""

from __future__ import annotations

import os
from pathlib import Path

import click

from roarctl.commands.common import CONTEXT, emit_json, json_option
from roarctl.errors import RoarError

CONFIG_KEYS = {
    "filters.exclude": "globs of paths never recorded as inputs or outputs (user + project)",
    "filters.include": "globs kept even where a default rule would filter them (user + project)",
    "hygiene.committed_code_only": "refuse to run when the git tree has uncommitted changes",
    "log.level": "roard's log level: debug, info, warning or error (user only)",
    "registry.url": "the team registry (GLaaS) to register with and read from (user only)",
    "registry.key": "the SSH key that signs: a private key file, or a .pub whose key is in "
    "ssh-agent; empty: the agent's first key; none: sign nothing (user only)",
    "registry.auto": "register every finished job in the background (user only)",
    "registry.visibility": "of what you register: private, team or public; empty: the "
    "registry's default (user only)",
    "registry.team": "for team visibility, which of your teams (if you are in several; user only)",
}
USER_ONLY = ("log.", "registry.")
BOOLEANS = ("hygiene.committed_code_only", "registry.auto")


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
        if _lookup(proj, key) is not None and not key.startswith(USER_ONLY):
            if key.startswith("filters.") and source != "default":
                value = [*value, *_lookup(proj, key)]  # type: ignore[misc]
                source += f" + {project_file}"
            else:
                value, source = _lookup(proj, key), str(project_file)
        rows.append({"key": key, "value": value, "source": source, "help": CONFIG_KEYS[key]})
    return rows


def set_user_value(key: str, value: object) -> Path:
    """Write one key of the user's config (`roarctl auth` keeps its key here); its file."""
    from roar.paths import paths

    target = paths().config
    data = _load(target)
    section, _, name = key.partition(".")
    data.setdefault(section, {})[name] = value
    _write_toml(target, data)
    return target


def _write_toml(path: Path, data: dict) -> None:
    """Our config holds only strings, booleans and lists of strings; their JSON forms are
    valid TOML values. Comments in the file are not kept."""
    import json

    lines = ["# roar configuration (see `roarctl config list`)"]
    for section, values in data.items():
        lines.append(f"\n[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    from roar.paths import paths, private_dir, private_umask

    text = "\n".join(lines) + "\n"
    tmp = path.with_suffix(".tmp")
    if path != paths().config:  # the project's .roar/config.toml: the project's modes
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
    else:  # the user's: 0600 in a 0700 directory, like everything of roar's in the home
        with private_umask():
            private_dir(path.parent)
            tmp.write_text(text)
            tmp.chmod(0o600)
    tmp.replace(path)


@click.group(context_settings=CONTEXT)
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
@json_option
def config_list(as_json: bool) -> None:
    """Every documented key: its value, where it comes from, what it does."""
    rows = _effective()
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['key']} = {r['value']!r}  ({r['source']})\n    {r['help']}")


@config.command("get", context_settings=CONTEXT)
@click.argument("key", type=click.Choice(list(CONFIG_KEYS)))
@json_option
def config_get(key: str, as_json: bool) -> None:
    """Print the effective value of KEY."""
    row = next(r for r in _effective() if r["key"] == key)
    emit_json(row["value"]) if as_json else click.echo(row["value"])


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
    if key.startswith(USER_ONLY) or scope == "user" or (scope is None and project_file is None):
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
    elif key in BOOLEANS:
        if values[0].lower() not in ("true", "false"):
            raise RoarError(f"{key} is true or false, not '{values[0]}'", exit_code=2)
        value = values[0].lower() == "true"
    else:
        value = _registry_value(key, values[0]) if key.startswith("registry.") else values[0]
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
    registry = data.get("registry", {})
    if key == "registry.auto" and value and not registry.get("url"):
        click.echo("roar: note: set registry.url too, or nothing is registered", err=True)


def _registry_value(key: str, value: str) -> str:
    """A registry setting, checked before it is written."""
    from roar.config import UNSIGNED
    from roar.errors import RoarFailure

    if key == "registry.url":
        from roar.remote import check_url

        try:
            return check_url(value) if value else ""
        except RoarFailure as exc:
            raise RoarError(exc.message, exc.hint, exit_code=2) from None
    if key == "registry.visibility" and value not in ("", "private", "team", "public"):
        raise RoarError(
            f"registry.visibility is private, team or public (or empty), not '{value}'",
            exit_code=2,
        )
    if key == "registry.key" and value not in ("", UNSIGNED):
        if not os.path.isfile(os.path.expanduser(value)):
            raise RoarError(
                f"no key file {value}",
                "give a private key file, or a .pub whose key is in ssh-agent",
                exit_code=2,
            )
        return os.path.abspath(os.path.expanduser(value))
    return value


COMMANDS = [config]
