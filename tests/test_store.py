"""The store and the wire stay readable across versions: an old database and an old message,
kept as files made by roar 0.1 (schema 1, protocol 1), must still load; a newer store is refused.
And a recorded job reads back whole as the versioned model (roard.store.records)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from pathlib import Path

import msgspec
from conftest import BIN, Roar, git_repo

from roar import model
from roard.store.schema import SCHEMA_VERSION

DATA = Path(__file__).parent / "data"
V1_JOBS = {
    "2056f9624071": "sh -c 'sort clean.csv > model.txt'",
    "9841fb2c98eb": "cp raw.csv clean.csv",
}
V1_MODEL = "5f78b206e07f092fea2d7f3cc9e87058efe3cb10d641b88bfbd6126a6ef41c1b"
# store-v3.db: made by roar at schema 3 (the last before registration's outbox), in /tmp/v3/proj
V3_JOBS = {
    "8958caf2ec50": "sh -c 'sort clean.csv > model.txt'",
    "bfa714eb1288": "cp raw.csv clean.csv",
}
V3_MODEL = "82b0249db5a1501bddeb89d5f211f5accb349243fd9ea4d9c76a4a822ee1a284"


def _install_db(roar: Roar, source: Path) -> Path:
    roar.db.parent.mkdir(parents=True, mode=0o700)
    shutil.copy(source, roar.db)
    roar.chown(roar.home)
    return roar.db


def test_schema_1_database_still_loads(roar: Roar) -> None:
    _install_db(roar, DATA / "store-v1.db")
    jobs = roar.json("log", "--all")
    assert {j["id"]: j["command"] for j in jobs} == V1_JOBS
    model = roar.json("show", V1_MODEL[:12])["artifact"]
    assert [j["id"] for j in model["produced_by"]] == ["2056f9624071"]
    job = roar.json("show", "2056f9624071")["job"]
    assert job["git"]["branch"] == "main"
    clean = next(i for i in job["inputs"] if i["path"].endswith("clean.csv"))
    assert clean["producer"] == "9841fb2c98eb"
    # and the upgraded store takes new runs beside the old ones
    roar.run("true")
    assert len(roar.json("log", "--all")) == 3


def test_schema_3_database_migrates_to_registration(roar: Roar) -> None:
    """A store from before registration (schema 3) gains the outbox (and every later
    migration) and keeps its jobs; its
    jobs can be queued like new ones (tests/registry/test_registry_client.py sends them)."""
    db = _install_db(roar, DATA / "store-v3.db")
    jobs = roar.json("log", "--all")
    assert {j["id"]: j["command"] for j in jobs} == V3_JOBS
    model = roar.json("show", V3_MODEL[:12])["artifact"]
    assert [j["id"] for j in model["produced_by"]] == ["8958caf2ec50"]
    assert roar.json("status")["registry"] is None  # no registry set up, nothing queued
    roar.run("true")
    roar.stop()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM registered").fetchone()[0] == 0
        # the outbox goes with its job: a row for a job that is removed goes too
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("INSERT INTO outbox (job, queued) SELECT seq, 0 FROM jobs")
        conn.execute("DELETE FROM jobs WHERE id = '8958caf2ec50'")
        assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 2


def test_protocol_1_message_from_the_spool_still_loads(roar: Roar) -> None:
    spool = roar.home / ".local/state/roar/spool"
    spool.mkdir(parents=True)
    shutil.copy(DATA / "runfinish-v1.msgpack", spool / "0123456789ab.msgpack")
    roar.chown(roar.home)
    job = roar.json("show", "0123456789ab")["job"]
    assert job["job"]["command"] == "cp a b"
    assert job["job"]["status"] == "recovered" and job["job"]["exit_code"] == 0
    assert job["processes"][0]["argv"] == ["cp", "a", "b"]


def test_store_from_a_newer_roar_is_refused_clearly(roar: Roar) -> None:
    db = _install_db(roar, DATA / "store-v1.db")
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    roar.chown(roar.home)
    proc = roar("status", check=False)
    assert proc.returncode == 1
    assert "newer than this roar" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") <= 2  # one line, and a hint
    with sqlite3.connect(db) as conn:  # and the store was left as it was
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 99
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 2


def test_corrupt_store_is_reported_not_overwritten(roar: Roar) -> None:
    roar.db.parent.mkdir(parents=True, mode=0o700)
    roar.db.write_bytes(b"this is not a database" * 100)
    roar.chown(roar.home)
    proc = roar("log", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "store" in proc.stderr
    assert roar.db.read_bytes() == b"this is not a database" * 100


def _damage(db: Path) -> bytes:
    """Every page but the first (the header and the schema) overwritten, as a bad disk might."""
    data = bytearray(db.read_bytes())
    for offset in range(4096, len(data), 4096):
        data[offset : offset + 4096] = b"\xff" * len(data[offset : offset + 4096])
    db.write_bytes(bytes(data))
    return bytes(data)


def test_damaged_pages_stop_roard_with_one_line_and_exit_78(roar: Roar) -> None:
    roar.run("sh", "-c", "echo a > a.txt")
    roar.stop()
    damaged = _damage(roar.db)
    foreground = roar.exec([str(BIN / "roard")], check=False)
    assert foreground.returncode == 78  # EX_CONFIG: systemd/roard.service does not restart
    line = foreground.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith(f"roard: error: the store {roar.db} is damaged")
    assert f"mv {roar.db} {roar.db}.damaged" in line  # what to do
    proc = roar("status", check=False)  # starting it from the CLI says the same line
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert line.removeprefix("roard: error: ") in proc.stderr
    assert "exited before it was ready" not in proc.stderr
    events = [json.loads(ln) for ln in (roar.home / ".local/state/roar/roard.log").open()]
    assert any(e["event"] == "store.unusable" and "damaged" in e["error"] for e in events)
    stops = [e for e in events if e["event"] == "roard.stop"]
    assert "damaged" in stops[-1]["reason"]  # the log says why it stopped
    assert roar.db.read_bytes() == damaged  # nothing overwritten


def test_an_empty_store_file_is_said_not_begun_afresh_silently(roar: Roar) -> None:
    roar.db.parent.mkdir(parents=True, mode=0o700)
    roar.db.write_bytes(b"")
    roar.chown(roar.home)
    status = roar("status").stdout
    assert f"{roar.db} was an empty (0-byte) file at start-up" in status
    assert "empty (0-byte)" in roar.json("status")["daemon"]["store_note"]
    log = (roar.home / ".local/state/roar/roard.log").read_text()
    assert '"event": "store.was_empty"' in log
    roar.stop()
    assert roar.json("status")["daemon"]["store_note"] is None  # a store that was whole: no note


READ_RECORDS = """
import sys, anyio, msgspec
from roar.paths import paths
from roard.store import Store, records

async def main():
    store = await Store.open(paths().db)
    try:
        job = await records.read_job(store, sys.argv[1])
        art = await records.read_artifact(store, job.outputs[0].hash)
    finally:
        await store.close()
    sys.stdout.buffer.write(msgspec.json.encode([job, art]))

anyio.run(main)
"""


def test_a_traced_job_reads_back_whole_as_the_model(roar: Roar) -> None:
    """store.records gives a real run's record as roar.model.Job (what a registry registers),
    the same as `show` tells it."""
    repo = git_repo(roar, roar.work / "proj", {"in.txt": "some data\n"})
    secret = "ghp_" + "Zq8v" * 9
    shown = roar.run("sh", "-c", "cat in.txt > out.txt", cwd=repo, env={"MY_API_TOKEN": secret})
    out = roar.exec([sys.executable, "-c", READ_RECORDS, shown["job"]["id"]]).stdout
    job, artifact = msgspec.json.decode(out, type=tuple[model.Job, model.Artifact])
    assert job.version == model.MODEL_VERSION
    assert (job.id, job.command, job.status) == (
        shown["job"]["id"],
        shown["job"]["command"],
        "complete",
    )
    assert (job.cwd, job.project, job.step) == (str(repo), str(repo), 1)
    assert [(i.path, i.hash) for i in job.inputs] == [
        (i["path"], i["hash"]) for i in shown["inputs"]
    ]
    assert [(o.path, o.hash) for o in job.outputs] == [
        (str(repo / "out.txt"), shown["outputs"][0]["hash"])
    ]
    assert job.context.git is not None and job.context.git.commit == shown["git"]["commit"]
    assert job.context.env["MY_API_TOKEN"] == "<redacted>" and secret not in out
    assert [p.argv for p in job.context.processes] == [p["argv"] for p in shown["processes"]]
    assert job.context.hardware is not None and job.context.hardware.cpus >= 1
    # cat copied the bytes: one artifact, seen under both names
    assert artifact.hash == job.outputs[0].hash == job.inputs[0].hash
    assert sorted(artifact.paths) == [str(repo / "in.txt"), str(repo / "out.txt")]
