"""What you attach to a project's runs and records: env (variables injected into its runs),
label (key=value on jobs and artifacts), collection (named groups of artifacts)."""

from __future__ import annotations

import os
from typing import Literal

import click

from roarctl.commands.common import CONTEXT, client, emit_json, json_option
from roarctl.errors import RoarError


@click.group(context_settings=CONTEXT)
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

    with client() as c:
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
@json_option
def env_list(as_json: bool) -> None:
    """List the variables set for this project (values redacted)."""
    values = _env("list")
    if as_json:
        emit_json(values)
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


@click.group(context_settings=CONTEXT)
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

    with client() as c:
        request = LabelOp(cwd=os.getcwdb(), op=op, target=os.fsencode(target), pairs=pairs)
        reply = c.call(request, expect=LabelReply)
    if as_json:
        emit_json(reply)
        return
    for k, v in reply.labels.items():
        click.echo(f"{k}={v}")


@label.command("set", context_settings=CONTEXT)
@click.argument("target")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@json_option
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
@json_option
def label_get(target: str, as_json: bool) -> None:
    """Show TARGET's labels."""
    _label("get", target, {}, as_json)


@label.command("rm", context_settings=CONTEXT)
@click.argument("target")
@click.argument("keys", nargs=-1, required=True)
@json_option
def label_rm(target: str, keys: tuple[str, ...], as_json: bool) -> None:
    """Remove labels KEYS from TARGET."""
    _label("rm", target, dict.fromkeys(keys, ""), as_json)


@click.group(context_settings=CONTEXT)
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

    with client() as c:
        request = CollectionOp(
            cwd=os.getcwdb(), op=op, name=name, targets=[os.fsencode(t) for t in targets]
        )
        reply = c.call(request, expect=CollectionReply)
    if as_json:
        emit_json(reply.collections)
        return
    for cname, records in reply.collections.items():
        click.echo(f"{cname} ({len(records)} artifacts)")
        render.records(records, indent="  ")


@collection.command("add", context_settings=CONTEXT)
@click.argument("name")
@click.argument("targets", nargs=-1, required=True)
@json_option
def collection_add(name: str, targets: tuple[str, ...], as_json: bool) -> None:
    """Add artifacts (paths, hashes) to collection NAME."""
    _collection("add", name, list(targets), as_json)


@collection.command("show", context_settings=CONTEXT)
@click.argument("name")
@json_option
def collection_show(name: str, as_json: bool) -> None:
    """List the artifacts of collection NAME."""
    _collection("show", name, [], as_json)


@collection.command("list", context_settings=CONTEXT)
@json_option
def collection_list(as_json: bool) -> None:
    """List all collections."""
    _collection("list", "", [], as_json)


COMMANDS = [env, label, collection]
