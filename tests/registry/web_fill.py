"""Filling a registry from real `roarctl run` jobs: the one place the browser tests register.

Until `roarctl register` lands, a job is read back whole from the user's own roard store
(`roard.store.records.read_job`, in a process of that user), made canonical as a registration
is (`roar.canonical.for_registry`, `session_record`), and sent in one signed batch to the real
`glaas serve` (`POST /api/v1/ingest`). Switching to `roarctl register` changes this file only."""

from __future__ import annotations

import sys
from typing import Any

import httpx
import msgspec
from registry_support import Key

from roar import canonical, model, registry

_READ = """
import sys, anyio, msgspec
from roar.paths import paths
from roard.store import Store, records

async def main():
    store = await Store.open(paths().db, readers=1)
    try:
        ids = [r[0] for r in await store.rows("SELECT id FROM jobs ORDER BY seq")]
        sessions = dict(await store.rows("SELECT id, started FROM sessions"))
        out = []
        for i in ids:
            job = await records.read_job(store, i)
            out.append([job, sessions.get(job.session)])
    finally:
        await store.close()
    sys.stdout.buffer.write(msgspec.json.encode(out))

anyio.run(main)
"""


def recorded_jobs(roar: Any) -> list[tuple[model.Job, float | None]]:
    """Every job in `roar`'s store (its user's), oldest first, with its session's start."""
    out = roar.exec([sys.executable, "-c", _READ], check=True, input=b"").stdout
    return msgspec.json.decode(out, type=list[tuple[model.Job, float | None]])


def register(
    roar: Any,
    url: str,
    key: Key,
    job_ids: list[str] | None = None,
    visibility: registry.Visibility = "public",
    team: str | None = None,
) -> list[str]:
    """Register `roar`'s recorded jobs (those of `job_ids`, else all) as `key`'s owner; the
    registry ids, in order."""
    regs: list[registry.Registration] = []
    sessions: dict[str, registry.Session] = {}
    for job, started in recorded_jobs(roar):
        if job_ids is not None and job.id not in job_ids:
            continue
        host = job.context.hardware.hostname if job.context.hardware else "localhost"
        session = None
        if job.session is not None and started is not None:
            record = canonical.session_record(host, started, job.session, job.project)
            sessions[record.hash] = record
            session = record.hash
        regs.append(
            registry.Registration(canonical.for_registry(job, home=str(roar.home)), session)
        )
    body = msgspec.json.encode(
        registry.Batch(
            jobs=regs, sessions=list(sessions.values()), visibility=visibility, team=team
        )
    )
    path = f"{registry.API}/ingest"
    auth = registry.authorization(key.sign, "POST", path, "", body)
    r = httpx.post(url + path, content=body, headers={"Authorization": auth}, timeout=60)
    assert r.status_code == 200, r.text
    ids: list[str] = r.json()["ids"]
    return ids
