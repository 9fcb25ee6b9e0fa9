"""The store and the wire stay readable across versions: an old database and an old message,
kept as files made by roar 0.1 (schema 1, protocol 1), must still load; a newer store is refused."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from conftest import Roar

DATA = Path(__file__).parent / "data"
V1_JOBS = {
    "2056f9624071": "sh -c 'sort clean.csv > model.txt'",
    "9841fb2c98eb": "cp raw.csv clean.csv",
}
V1_MODEL = "5f78b206e07f092fea2d7f3cc9e87058efe3cb10d641b88bfbd6126a6ef41c1b"


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
