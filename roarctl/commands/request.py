"""Training requests at the team registry: request new|list|show|edit|approve|reject|withdraw|
claim|complete|comment. Every call is signed with your registry key (`roarctl auth login`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from roarctl.commands.common import CONTEXT, emit_json, json_option, printable
from roarctl.errors import RoarError

if TYPE_CHECKING:
    from roar.registry import RequestEntry

FIELDS = ("dataset", "base_model", "compute", "hours", "budget", "reviewer", "rationale")
# the numbers of a spec: what each accepts (RequestSpec's bounds, and finite: JSON has no inf or
# nan, so float("inf") would reach the registry as null), and an example
NUMBERS = {
    "hours": (100_000.0, "a number from 0 to 100000", "3.2"),
    "budget": (float("inf"), "a finite number, 0 or more", "984"),
}


@click.group(context_settings=CONTEXT)
def request() -> None:
    """Training requests: filed by a person or an agent, approved by a person (the reviewer)
    before compute starts; `roarctl run --request R-12 CMD` then runs for it.

    \b
    Examples:
      roarctl request new --dataset 3f2a9c --base-model 81be07 --compute 8xH100 \\
          --hours 3.2 --budget 984 --reviewer chris --rationale "fine-tune on v2"
      roarctl request new --from spec.json --json      # what agents do
      roarctl request list --state pending
      roarctl request approve R-12
      roarctl request claim R-12 && roarctl run --request R-12 python train.py
      roarctl request complete R-12
    """


def _spec_options(f: Any) -> Any:
    options = [
        click.option(
            "--from",
            "from_file",
            type=click.Path(dir_okay=False, allow_dash=True),
            help="A JSON spec with these fields in snake_case ('-': stdin).",
        ),
        click.option("--dataset", help="The dataset: an artifact hash or prefix."),
        click.option("--base-model", help="The base model: an artifact hash or prefix."),
        click.option("--compute", help="What it runs on, e.g. 8xH100."),
        click.option("--hours", metavar="HOURS", help="How long, in hours (0 to 100000)."),
        click.option("--budget", metavar="COST", help="What it may cost (a number, 0 or more)."),
        click.option("--reviewer", help="The user who must approve it."),
        click.option("--rationale", help="Why."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _spec(from_file: str | None, base: dict[str, Any], given: dict[str, Any]) -> Any:
    import msgspec

    from roar.registry import RequestSpec

    fields = dict(base)
    if from_file:
        try:
            raw = sys.stdin.buffer.read() if from_file == "-" else Path(from_file).read_bytes()
        except OSError as exc:
            raise RoarError(f"cannot read {from_file}: {exc.strerror}", exit_code=2) from None
        try:
            loaded = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            loaded = _out_of_range(raw)  # 1e999: msgspec refuses it, without saying where
            if loaded is None:
                raise RoarError(f"{from_file} is not JSON: {exc}", exit_code=2) from None
        if not isinstance(loaded, dict):
            raise RoarError(f"{from_file} is not a JSON object of the spec's fields", exit_code=2)
        for name in NUMBERS:
            if name in loaded:
                loaded[name] = _number(name, loaded[name], from_file)
        fields.update(loaded)
    for name, value in given.items():
        if value is not None:
            fields[name] = _number(name, value) if name in NUMBERS else value
    missing = [f for f in FIELDS[:-1] if f not in fields]
    if missing:
        names = ", ".join("--" + m.replace("_", "-") for m in missing)
        raise RoarError(f"the request needs {names}", "or give them in --from spec.json", 2)
    if isinstance(fields.get("rationale"), str):
        from roar.redact import redact_text

        fields["rationale"] = redact_text(fields["rationale"])  # no secret leaves the machine
    try:
        return msgspec.convert(fields, RequestSpec)
    except msgspec.ValidationError as exc:
        raise RoarError(f"not a request spec: {exc}", f"fields: {', '.join(FIELDS)}", 2) from None


def _out_of_range(raw: bytes) -> Any:
    """A JSON text with a number too large for a float, read with such numbers as +-inf (the
    spec's check then names the field); None if it is not JSON for another reason."""
    import json

    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _number(name: str, value: Any, from_file: str | None = None) -> float:
    """`value`, the text of --NAME or the JSON value of NAME in `from_file`, as a float if NAME
    accepts it; else one line that says what it accepts (`--budget inf`: a finite number, 0 or
    more)."""
    import math

    import msgspec

    most, accepted, example = NUMBERS[name]
    number = math.nan
    if from_file is None:
        shown = f"--{name} {printable(value)}"
        try:
            number = float(value)
        except ValueError:
            pass
    else:
        # a number too large for a float (1e999) is read as inf, which JSON would write as null
        text = repr(value) if isinstance(value, float) else msgspec.json.encode(value).decode()
        shown = f"{name} {printable(text)} in {from_file}"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
    if math.isfinite(number) and 0 <= number <= most:
        return number
    raise RoarError(
        f"{shown} is not accepted: {name} takes {accepted}, e.g. --{name} {example}", exit_code=2
    )


def _remote() -> Any:
    from roarctl import remote

    return remote.Remote.open()


def _call(method: str, path: str, body: Any = None) -> RequestEntry:
    import msgspec

    from roar.registry import RequestEntry

    content = b"" if body is None else msgspec.json.encode(body)
    with _remote() as reg:
        entry: RequestEntry = reg.call(method, path, RequestEntry, body=content)
        return entry


def _ref(ref: str) -> str:
    from roar.registry import request_ref

    n = request_ref(ref)
    if n is None:
        raise RoarError(f"not a request id: {ref!r}", "request ids look like R-12", exit_code=2)
    return f"R-{n}"


def _when(t: float | None) -> str:
    import time

    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def _out(entry: RequestEntry, as_json: bool, whole: bool = False) -> None:
    if as_json:
        emit_json(entry)
        return
    s = entry.spec
    claimed = f" by {entry.claimed_by}" if entry.claimed_by else ""
    click.echo(
        f"{entry.id}  {entry.state}{claimed}  rev {entry.revision}  spec {entry.spec_hash[:12]}"
    )
    if not whole:
        return
    agent = " (agent)" if entry.requester_agent else ""
    click.echo(f"requester:  {entry.requester}{agent}")
    click.echo(f"reviewer:   {entry.reviewer}")
    click.echo(f"dataset:    {s.dataset}")
    click.echo(f"base model: {s.base_model}")
    click.echo(f"compute:    {printable(s.compute)} for {s.hours:g} h, budget {s.budget:g}")
    over = "  OVER BUDGET" if entry.over_budget else ""
    click.echo(f"spent:      {entry.spent:.2f} of {s.budget:g} (its runs, at current prices){over}")
    if entry.expires is not None and entry.state == "approved":
        click.echo(f"approval expires: {_when(entry.expires)}")
    if s.rationale:
        click.echo(f"rationale:  {printable(s.rationale, lines=True)}")
    click.echo("events:")
    for e in entry.events:
        who = (e.actor or "registry") + (" (agent)" if e.agent else "")
        note = f": {printable(e.comment, lines=True)}" if e.comment else ""
        click.echo(f"  {_when(e.at)}  {e.action:<10} {who}  rev {e.revision}{note}")
    if entry.runs:
        click.echo("runs:")
        for r in entry.runs:
            flag = (
                f"  FLAG: inputs lack {', '.join(h[:12] for h in r.missing)}" if r.missing else ""
            )
            click.echo(f"  {r.job[:12]}  {r.owner}  {r.status}  {printable(r.command)}{flag}")


@request.command("new", context_settings=CONTEXT)
@_spec_options
@json_option
def new(from_file: str | None, as_json: bool, **given: Any) -> None:
    """File a request (pending until its reviewer approves it).

    \b
    Examples:
      roarctl request new --dataset 3f2a9c --base-model 81be07 --compute 8xH100 \\
          --hours 3.2 --budget 984 --reviewer chris --rationale "fine-tune on v2"
      roarctl request new --from spec.json --json
    """
    entry = _call("POST", "/requests", _spec(from_file, {}, given))
    _out(entry, as_json, whole=True)


@request.command("edit", context_settings=CONTEXT)
@click.argument("ref")
@_spec_options
@json_option
def edit(ref: str, from_file: str | None, as_json: bool, **given: Any) -> None:
    """Change your request: a new revision (an approval is dismissed: it goes back to pending).

    \b
    Example:
      roarctl request edit R-12 --hours 4
    """
    import msgspec

    ref = _ref(ref)
    current = _call("GET", f"/requests/{ref}")
    spec = _spec(from_file, msgspec.to_builtins(current.spec), given)
    _out(_call("POST", f"/requests/{ref}/revisions", spec), as_json, whole=True)


@request.command("list", context_settings=CONTEXT)
@click.option("--state", "states", multiple=True, help="Only this state (repeatable).")
@click.option("--mine", is_flag=True, help="Only those you filed, review or claimed.")
@json_option
def list_(states: tuple[str, ...], mine: bool, as_json: bool) -> None:
    """Requests, newest first.

    \b
    Examples:
      roarctl request list --state pending
      roarctl request list --mine --json
    """
    from roar.registry import RequestList

    params: dict[str, Any] = {"state": list(states)} if states else {}
    if mine:
        params["mine"] = "true"
    with _remote() as reg:
        found = reg.call("GET", "/requests", RequestList, params=params or None)
    if as_json:
        emit_json(found)
        return
    for r in found.requests:
        s = r.spec
        click.echo(
            f"{r.id:<7} {r.state:<10} {r.requester:<12} -> {r.reviewer:<12} "
            f"{printable(s.compute)} {s.hours:g} h  budget {s.budget:g}  spent {r.spent:.2f}"
            + ("  OVER BUDGET" if r.over_budget else "")
        )


@request.command("show", context_settings=CONTEXT)
@click.argument("ref")
@json_option
def show(ref: str, as_json: bool) -> None:
    """A request: its spec, events and the runs that used it (flagged when their inputs lack
    the approved dataset or base model)."""
    _out(_call("GET", f"/requests/{_ref(ref)}"), as_json, whole=True)


def _action(verb: str, ref: str, comment: str | None, as_json: bool, **extra: Any) -> None:
    from roar.redact import redact_text

    said = None if comment is None else redact_text(comment)  # no secret leaves the machine
    body = {"comment": said, **{k: v for k, v in extra.items() if v is not None}}
    _out(_call("POST", f"/requests/{_ref(ref)}/{verb}", body), as_json)


_comment = click.option("-m", "--comment", help="A comment, kept with the event.")


@request.command("approve", context_settings=CONTEXT)
@click.argument("ref")
@click.option(
    "--spec",
    "spec_hash",
    help="The spec hash (or its first 12 digits, as `show` prints) you reviewed; needed once "
    "the request was edited.",
)
@_comment
@json_option
def approve(ref: str, spec_hash: str | None, comment: str | None, as_json: bool) -> None:
    """Approve a request you are the reviewer of (it binds to the spec you reviewed).

    An unedited request has one spec, the one you read; once it was edited, name the one you
    reviewed (`--spec`, from `roarctl request show`): the requester may have changed it since.
    """
    ref = _ref(ref)
    current = _call("GET", f"/requests/{ref}")
    if spec_hash is None and current.revision > 1:
        raise RoarError(
            f"{ref} was edited (revision {current.revision}): say which spec you reviewed",
            f"roarctl request show {ref}, then roarctl request approve {ref} --spec HASH",
            exit_code=2,
        )
    if spec_hash is None or (len(spec_hash) >= 12 and current.spec_hash.startswith(spec_hash)):
        spec_hash = current.spec_hash  # the server still refuses it if it changed meanwhile
    _action("approve", ref, comment, as_json, spec_hash=spec_hash)


def _simple(verb: str, doc: str) -> click.Command:
    @click.command(verb, context_settings=CONTEXT, help=doc)
    @click.argument("ref")
    @_comment
    @json_option
    def command(ref: str, comment: str | None, as_json: bool) -> None:
        _action(verb, ref, comment, as_json)

    return command


request.add_command(_simple("reject", "Reject a request you are the reviewer of."))
request.add_command(_simple("withdraw", "Withdraw your own request."))
request.add_command(_simple("claim", "Claim an approved request: you run it (one claimer wins)."))


@request.command("comment", context_settings=CONTEXT)
@click.argument("ref")
@click.argument("text")
@json_option
def comment(ref: str, text: str, as_json: bool) -> None:
    """Comment on a request (any state)."""
    _action("comment", ref, text, as_json)


@request.command("complete", context_settings=CONTEXT)
@click.argument("ref")
@click.option(
    "--outcome",
    type=click.Choice(["completed", "failed", "cancelled"]),
    default="completed",
    show_default=True,
)
@_comment
@json_option
def complete(ref: str, outcome: str, comment: str | None, as_json: bool) -> None:
    """Close a request you claimed: completed, failed or cancelled."""
    _action("complete", ref, comment, as_json, outcome=outcome)


COMMANDS = [request]
