"""Compute accounting: the price table and the report of where the compute went.

A job's cost is its CPU-hours times the `cpu` price plus its GPU-hours times its GPU model's
price: the longest `gpu:NAME` whose NAME is in the model's name (case-insensitive, so
`gpu:H100` prices "NVIDIA H100 80GB HBM3"), else the `gpu` price; GPU-hours with neither are
counted as unpriced. Prices are the current ones: changing one re-prices the past.

A job "moved the needle" when a later job (one you can read) read one of its outputs; its
outputs are "unread" when none did. Jobs without outputs are neither.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from roar.errors import Invalid
from roar.registry import (
    ComputeBy,
    ComputePoint,
    ComputeReport,
    ComputeRow,
    Price,
    since_seconds,
)

RESOURCE = re.compile(r"cpu|gpu|gpu:[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")
AMOUNT = re.compile(r"(?P<n>[0-9]{1,9}(?:\.[0-9]{1,9})?)(?:/h)?")
READ, UNREAD, NO_OUTPUTS = 1, 2, 0


def parse_price(resource: str, value: str) -> Price:
    """`gpu:H100` `2.49/h` as a Price (per hour); a bad one is Invalid."""
    if not RESOURCE.fullmatch(resource):
        raise Invalid(
            f"not a priced resource: {resource[:70]!r}", "give cpu, gpu or gpu:MODEL (gpu:H100)"
        )
    m = AMOUNT.fullmatch(value.strip())
    if m is None:
        raise Invalid(f"not a price per hour: {value[:70]!r}", "give e.g. 2.49/h or 0.04")
    return Price(resource, float(m["n"]))


def gpu_price(model: str | None, prices: dict[str, float]) -> float | None:
    """The hourly price of one GPU of `model` (None: no price applies)."""
    name = (model or "").lower()
    best: tuple[int, float] | None = None
    for resource, per_hour in prices.items():
        if resource.startswith("gpu:"):
            part = resource[4:].lower()
            if part in name and (best is None or len(part) > best[0]):
                best = (len(part), per_hour)
    if best is not None:
        return best[1]
    return prices.get("gpu")


@dataclass(frozen=True)
class Used:
    """One job as the report reads it (glaas.store.Store.compute_jobs)."""

    started: float
    owner: str
    agent: bool
    project: str | None
    cpu_seconds: float
    gpu_seconds: float
    gpu_model: str | None
    outputs: int  # READ, UNREAD or NO_OUTPUTS
    request: str | None = None  # the request the job is linked to (it named it)


NO_REQUEST = "-"  # the row of jobs linked to no request, in a report by request


def key_of(job: Used, by: ComputeBy) -> str | None:
    """The row a job counts in (None: not in this report: a person's job in `--by agent`)."""
    if by == "project":
        return job.project or "(no project)"
    if by == "request":
        return job.request or NO_REQUEST
    if job.agent != (by == "agent"):
        return None
    return job.owner


def _add(row: ComputeRow, job: Used, cost: float) -> None:
    row.jobs += 1
    row.cpu_hours += job.cpu_seconds / 3600
    row.gpu_hours += job.gpu_seconds / 3600
    row.cost += cost
    if job.outputs == READ:
        row.read_jobs += 1
        row.read_cost += cost
    elif job.outputs == UNREAD:
        row.unread_jobs += 1
        row.unread_cost += cost


def cost(
    cpu_seconds: float, gpu_seconds: float, gpu_model: str | None, table: dict[str, float]
) -> tuple[float, float]:
    """(cost, unpriced GPU-hours) of that much use at the prices in `table` (resource: per
    hour). Linear in the seconds: the sum of several jobs' seconds costs the sum of their costs."""
    gpu = gpu_price(gpu_model, table) if gpu_seconds else 0.0
    unpriced = 0.0
    if gpu is None:
        unpriced, gpu = gpu_seconds / 3600, 0.0
    return cpu_seconds / 3600 * table.get("cpu", 0.0) + gpu_seconds / 3600 * gpu, unpriced


def report(
    jobs: list[Used], prices: list[Price], by: ComputeBy, since: float, until: float
) -> ComputeReport:
    table = {p.resource: p.per_hour for p in prices}
    rows: dict[str, ComputeRow] = {}
    total = ComputeRow("total")
    daily: dict[tuple[str, str], float] = defaultdict(float)
    unpriced = 0.0
    for job in jobs:
        key = key_of(job, by)
        if key is None:
            continue
        spent, not_priced = cost(job.cpu_seconds, job.gpu_seconds, job.gpu_model, table)
        unpriced += not_priced
        _add(rows.setdefault(key, ComputeRow(key)), job, spent)
        _add(total, job, spent)
        day = datetime.fromtimestamp(job.started, UTC).strftime("%Y-%m-%d")
        daily[(day, key)] += spent
    ordered = sorted(rows.values(), key=lambda r: (-r.cost, r.key))
    series = [ComputePoint(day, key, cost) for (day, key), cost in sorted(daily.items())]
    return ComputeReport(by, since, until, ordered, total, series, prices, unpriced)


def window(since: str, now: float | None = None) -> tuple[float, float]:
    """(since, until) in unix seconds for `30d`; a bad duration is Invalid."""
    until = time.time() if now is None else now
    try:
        return until - since_seconds(since), until
    except ValueError as exc:
        raise Invalid(str(exc)) from None
