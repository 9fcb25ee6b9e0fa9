"""The versioned model (roar/model.py): records written by earlier versions still load, and the
model's encodings are stable (roard's store blobs, the registration payload, the registry's
JSON)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from roar import model

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name", ["job-v1.msgpack", "job-v1.json"])
def test_a_version_1_job_record_still_loads(name: str) -> None:
    raw = (DATA / name).read_bytes()
    decode = msgspec.msgpack.decode if name.endswith(".msgpack") else msgspec.json.decode
    job = decode(raw, type=model.Job)
    assert job.version == 1
    assert job.id == "3f2a9c1b20aa" and job.status == "complete" and job.step == 2
    assert job.outputs[0].previous == "c" * 64
    ctx = job.context
    assert ctx.git is not None and ctx.git.dirty[0].status == "modified"
    assert ctx.packages["/usr/bin/python3.11"][1] == model.Package("scikit-learn", "1.5.2")
    assert ctx.hardware is not None and ctx.hardware.memory_bytes == 25769803776
    assert ctx.trackers[0].tool == "wandb" and ctx.filtered.by_rule == {"python": 2, "system": 1}
    assert ctx.env["WANDB_API_KEY"] == "<redacted>"


def test_a_record_round_trips_unchanged_through_both_encodings() -> None:
    raw = (DATA / "job-v1.msgpack").read_bytes()
    job = msgspec.msgpack.decode(raw, type=model.Job)
    assert msgspec.msgpack.encode(job) == raw
    assert msgspec.json.decode(msgspec.json.encode(job), type=model.Job) == job


def test_a_minimal_old_record_gets_defaults_for_fields_added_later() -> None:
    """What schema evolution relies on: fields added with defaults load from older records."""
    old = {"id": "0123456789ab", "command": "true", "argv": ["true"], "cwd": "/", "started": 1.0}
    job = msgspec.convert({**old, "status": "complete"}, model.Job)
    assert job.context == model.RunContext() and job.inputs == [] and job.kind == "run"


def test_values_outside_the_vocabulary_are_refused() -> None:
    raw = msgspec.json.decode((DATA / "job-v1.json").read_bytes())
    raw["status"] = "exploded"
    with pytest.raises(msgspec.ValidationError, match="status"):
        msgspec.convert(raw, model.Job)
