"""The versioned model (roar/model.py): records written by earlier versions still load, and its
encodings are stable (roard's store blobs, the registration payload, the registry's JSON)."""

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


@pytest.mark.parametrize("name", ["job-v1.msgpack", "job-v1-system.json"])
def test_a_record_round_trips_through_both_encodings(name: str) -> None:
    """Decoded records compare equal after a trip through either encoding. (The bytes of an
    old record legitimately change: fields added since are written with their defaults.)"""
    raw = (DATA / name).read_bytes()
    decode = msgspec.msgpack.decode if name.endswith(".msgpack") else msgspec.json.decode
    job = decode(raw, type=model.Job)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(job), type=model.Job) == job
    assert msgspec.json.decode(msgspec.json.encode(job), type=model.Job) == job


def test_an_old_record_loads_without_what_was_added_since() -> None:
    job = msgspec.msgpack.decode((DATA / "job-v1.msgpack").read_bytes(), type=model.Job)
    assert (job.context.system, job.context.conda, job.context.container) == (None, None, None)
    # and a record of the new shape keeps every field of the old one
    new = msgspec.json.decode((DATA / "job-v1-system.json").read_bytes(), type=model.Job)
    assert msgspec.structs.replace(new.context, system=None, conda=None, container=None) == (
        job.context
    )


def test_a_record_of_the_new_shape_loads_what_a_job_used_beyond_python() -> None:
    job = msgspec.json.decode((DATA / "job-v1-system.json").read_bytes(), type=model.Job)
    ctx = job.context
    assert ctx.system is not None and ctx.system.manager == "dpkg" and ctx.system.unowned == 1
    assert ctx.system.packages[1] == model.Package("libc6:amd64", "2.36-9+deb12u7")
    assert ctx.conda is not None and ctx.conda.name == "ml"
    assert ctx.conda.packages[0] == model.Package("numpy", "1.26.4")
    assert ctx.container == model.Container(
        "podman", "docker.io/library/python:3.11", "0123456789abcdef"
    )


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
