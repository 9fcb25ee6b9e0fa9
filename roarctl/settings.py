"""Bookkeeping commands: env, label, collection, config, completion."""

from __future__ import annotations

import os
import sys

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


def _env(op: str, name: str = "", value: str = "") -> dict[str, str]:
    from roard.protocol import EnvOp, EnvReply

    with _client() as c:
        reply = c.call(EnvOp(cwd=os.getcwdb(), op=op, name=name, value=value))
    assert isinstance(reply, EnvReply)
    return reply.values


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


def _label(op: str, target: str, pairs: dict[str, str], as_json: bool) -> None:
    from roard.protocol import LabelOp, LabelReply

    with _client() as c:
        reply = c.call(LabelOp(cwd=os.getcwdb(), op=op, target=target, pairs=pairs))
    assert isinstance(reply, LabelReply)
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


def _collection(op: str, name: str, targets: list[str], as_json: bool) -> None:
    from roarctl import render
    from roard.protocol import CollectionOp, CollectionReply

    with _client() as c:
        reply = c.call(CollectionOp(cwd=os.getcwdb(), op=op, name=name, targets=targets))
    assert isinstance(reply, CollectionReply)
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
