"""roar.canonical: the registration payload says nothing of this machine's layout, carries no
credentials or secrets, and has an id that depends on the record only."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from roar import canonical, model
from roar.redact import REDACTED

HOME = "/home/ada"
ROOT = f"{HOME}/proj"
DATA = Path(__file__).parents[1] / "data"


def _job(**changes: object) -> model.Job:
    job = model.Job(
        id="3f2a9c1b20aa",
        command="python train.py --api-key sk-abcdefghijklmnopqrstuvwxyz123456",
        argv=["python", "train.py", "--api-key", "sk-abcdefghijklmnopqrstuvwxyz123456"],
        cwd=f"{ROOT}/src",
        started=1700000000.25,
        status="complete",
        project=ROOT,
        session=4,
        step=2,
        inputs=[
            model.IO(f"{ROOT}/data/raw.csv", "a" * 64, 10),
            model.IO(f"{HOME}/datasets/big.parquet", "b" * 64, 20),
            model.IO("/srv/shared/labels.csv", "c" * 64, 30),
        ],
        outputs=[model.IO(f"{ROOT}/model.pt", "d" * 64, 40, previous="e" * 64)],
        context=model.RunContext(
            git=model.GitState(
                root=ROOT,
                commit="f" * 40,
                remotes={
                    "origin": "https://ada:ghp_0123456789abcdefghijABCDEFGHIJ012345@github.com/ada/p",
                    "mirror": "ssh://git:hunter2@example.org/p.git",
                    "scp": "git@github.com:ada/p.git",
                },
            ),
            env={
                "PATH": f"{HOME}/.local/bin:/usr/bin",
                "GITHUB_TOKEN": "ghp_0123456789abcdefghijABCDEFGHIJ012345",
                "DATABASE_URL": "postgresql://app:s3cretpw@db/app",
            },
            packages={f"{HOME}/.venv/bin/python": [model.Package("numpy", "2.1.0")]},
            processes=[model.Process(1, 0, ["python", "train.py"], exe=f"{HOME}/.venv/bin/python")],
            filtered=model.FilteredSummary(count=2, by_rule={"system": 2}, paths=["/etc/a", "/b"]),
        ),
    )
    return msgspec.structs.replace(job, **changes)


def test_paths_are_relative_to_the_git_root_or_home() -> None:
    out = canonical.for_registry(_job(), home=HOME)
    assert [io.path for io in out.inputs] == [
        "data/raw.csv",
        "~/datasets/big.parquet",
        "/srv/shared/labels.csv",
    ]
    assert out.outputs[0].path == "model.pt" and out.outputs[0].previous == "e" * 64
    assert out.cwd == "src" and out.project == "proj"
    assert out.context.git is not None and out.context.git.root == "~/proj"
    assert list(out.context.packages) == ["~/.venv/bin/python"]
    assert out.context.processes[0].exe == "~/.venv/bin/python"
    assert out.context.env["PATH"] == "~/.local/bin:/usr/bin"
    assert out.context.filtered == model.FilteredSummary(2, {"system": 2}, [])
    assert out.session is None and out.step == 2
    assert HOME not in msgspec.json.encode(out).decode()


def test_credentials_and_secrets_do_not_leave() -> None:
    out = canonical.for_registry(_job(), home=HOME)
    git = out.context.git
    assert git is not None
    assert git.remotes == {
        "origin": "https://github.com/ada/p",
        "mirror": "ssh://git@example.org/p.git",
        "scp": "git@github.com:ada/p.git",
    }
    assert out.context.env["GITHUB_TOKEN"] == REDACTED
    assert out.context.env["DATABASE_URL"] == f"postgresql://app:{REDACTED}@db/app"
    assert out.argv[-1] == REDACTED and "sk-abc" not in out.command
    text = msgspec.json.encode(out).decode()
    for secret in ("ghp_0123", "hunter2", "s3cretpw", "sk-abcdef"):
        assert secret not in text


def test_the_id_depends_on_the_record_only() -> None:
    one = canonical.for_registry(_job(), home=HOME)
    assert len(one.id) == 64 and one.id == canonical.job_id(one)
    # the same job as another store keeps it (another local id and session number)
    same = canonical.for_registry(_job(id="000000000001", session=9), home=HOME)
    assert same.id == one.id
    # the same layout under another home on another machine
    moved = _job()
    moved_text = msgspec.json.encode(moved).decode().replace(HOME, "/Users/ada")
    other = msgspec.json.decode(moved_text, type=model.Job)
    assert canonical.for_registry(other, home="/Users/ada").id == one.id
    assert canonical.for_registry(_job(exit_code=1), home=HOME).id != one.id
    # what the server does to a canonical record changes nothing
    assert canonical.scrub(one) == one


def test_a_version_1_record_has_a_fixed_id() -> None:
    """The canonical encoding is part of the wire: changing it re-keys every registered job."""
    job = msgspec.json.decode((DATA / "job-v1.json").read_bytes(), type=model.Job)
    out = canonical.for_registry(job, home="/home/ada")
    assert out.id == canonical.job_id(out)
    assert out.id == GOLDEN_V1_ID


GOLDEN_V1_ID = "f658d8efd3d55bcc4b51811697eb5bfa1fc3dd2b007465bc50255bad5809786f"


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("https://x-access-token:abc@github.com/o/r.git", "https://github.com/o/r.git"),
        ("http://user@host/r", "http://host/r"),
        ("ssh://git@github.com/o/r", "ssh://git@github.com/o/r"),
        ("ssh://:pw@host/r", "ssh://host/r"),
        ("/local/path/repo", "/local/path/repo"),
    ],
)
def test_strip_credentials(url: str, clean: str) -> None:
    assert canonical.strip_credentials(url) == clean


def test_session_hashes_are_stable_and_distinct() -> None:
    a = canonical.session_record("laptop", 1.5, 3, "/home/ada/proj")
    assert a == canonical.session_record("laptop", 1.5, 3, "/home/ada/proj/")
    assert a.project == "proj" and len(a.hash) == 64
    assert a.hash != canonical.session_record("laptop", 1.5, 4, None).hash
    assert a.hash != canonical.session_record("desktop", 1.5, 3, None).hash


def test_fields_added_to_the_context_later_key_a_job_only_when_set() -> None:
    job = msgspec.json.decode((DATA / "job-v1.json").read_bytes(), type=model.Job)
    ctx = msgspec.structs.replace(
        job.context,
        conda=model.CondaEnv(prefix="/home/ada/conda/envs/ml", name="ml"),
        container=model.Container("docker"),
    )
    out = canonical.for_registry(msgspec.structs.replace(job, context=ctx), home="/home/ada")
    assert out.id != GOLDEN_V1_ID and out.id == canonical.job_id(out)
    assert out.context.conda is not None and out.context.conda.prefix == "~/conda/envs/ml"


def test_the_request_a_run_was_for_keys_a_job_only_when_set() -> None:
    """Job.request (after `signal`) came later: a record without it keeps its golden id."""
    job = msgspec.json.decode((DATA / "job-v1.json").read_bytes(), type=model.Job)
    assert job.request is None
    assert canonical.for_registry(job, home="/home/ada").id == GOLDEN_V1_ID
    linked = canonical.for_registry(msgspec.structs.replace(job, request="R-12"), home="/home/ada")
    assert linked.request == "R-12" and linked.id not in (GOLDEN_V1_ID, "")
    assert linked.id == canonical.job_id(linked)


def _reference_id(job: model.Job) -> str:
    """job_id as it was first written: the job as builtins, less id, version and the later
    fields that are None. job_id makes the same bytes without to_builtins."""
    import blake3

    record = msgspec.to_builtins(job, order="sorted")
    del record["id"], record["version"]
    for name in ("request", "usage"):
        if record[name] is None:
            del record[name]
    for name in ("system", "conda", "container"):
        if record["context"][name] is None:
            del record["context"][name]
    return blake3.blake3(msgspec.json.encode(record, order="sorted")).hexdigest()


def test_the_id_is_the_reference_encodings_whatever_fields_are_set() -> None:
    job = msgspec.json.decode((DATA / "job-v1.json").read_bytes(), type=model.Job)
    usage = model.Usage(cpu_seconds=1.5, wall_seconds=2.0, max_rss_bytes=1 << 20)
    ctx = job.context
    variants = [
        job,
        _job(),
        msgspec.structs.replace(job, request="R-12", usage=usage),
        msgspec.structs.replace(job, usage=usage, exit_code=None, ended=None, version=7),
        msgspec.structs.replace(
            job,
            context=msgspec.structs.replace(
                ctx,
                system=model.SystemPackages("dpkg", [model.Package("libc6", "2.36")], 3),
                conda=model.CondaEnv(prefix="/opt/conda", name="base"),
                container=model.Container("docker", image="python:3.11"),
                trackers=[model.TrackerRun("wandb", "r1", "https://wandb.ai/x", "ada/p", "env X")],
            ),
        ),
    ]
    ids = set()
    for v in variants:
        out = canonical.for_registry(v, home=HOME)
        assert canonical.job_id(out) == _reference_id(out)
        ids.add(out.id)
    assert len(ids) == len(variants)  # and each variant is keyed apart
