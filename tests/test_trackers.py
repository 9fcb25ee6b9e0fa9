"""Experiment-tracker detection: real on-disk layouts as W&B, MLflow, Neptune and TensorBoard
write them, built in tmp_path; detect() is given the written paths. No mocks."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import msgspec

from roar.redact import REDACTED, redact_env
from roard.capture.trackers import TrackerRun, detect

WANDB_ID = "3k9x2m7q"
MLFLOW_ID = "8f0c3b6e2a1d4c5b9e7f6a5d4c3b2a10"
MLFLOW_EXP = "684915203812345678"
NEPTUNE_UUID = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"


def write(path: Path, content: str | bytes = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def paths(*files: Path) -> list[bytes]:
    return [os.fsencode(f) for f in files]


# ---------------------------------------------------------------- W&B


def wandb_run(root: Path, run_id: str = WANDB_ID, prefix: str = "run-") -> list[Path]:
    """The files wandb.init() + run.log() + run.finish() leave in a run directory."""
    wandb_dir = root / "wandb"
    run_dir = wandb_dir / f"{prefix}20240501_101112-{run_id}"
    files = [
        write(run_dir / f"run-{run_id}.wandb", b":W&B\x00\x01\x00\x00\x00\x18\x00\x00\x00\x02"),
        write(
            run_dir / "files" / "config.yaml",
            "_wandb:\n  value:\n    cli_version: 0.17.0\n    python_version: 3.11.9\n"
            "    start_time: 1714558272\n    t:\n      1:\n      - 1\n      - 55\n"
            "lr:\n  desc: null\n  value: 0.001\n",
        ),
        write(
            run_dir / "files" / "wandb-metadata.json",
            json.dumps(
                {
                    "os": "Linux-6.5.0-x86_64-with-glibc2.35",
                    "python": "3.11.9",
                    "heartbeatAt": "2024-05-01T10:11:13.000000",
                    "startedAt": "2024-05-01T10:11:12.000000",
                    "program": "/home/alice/mnist/train.py",
                    "codePath": "train.py",
                    "git": {"remote": "https://github.com/alice/mnist.git", "commit": "0" * 40},
                    "email": "alice@example.com",
                    "root": "/home/alice/mnist",
                    "host": "gpu01",
                    "username": "alice",
                    "executable": "/usr/bin/python3",
                    "cpu_count": 8,
                }
            ),
        ),
        write(run_dir / "files" / "wandb-summary.json", '{"loss": 0.12, "_step": 99}'),
        write(run_dir / "files" / "output.log", "epoch 1 loss 0.5\n"),
        write(run_dir / "files" / "requirements.txt", "torch==2.3.0\nwandb==0.17.0\n"),
        write(run_dir / "logs" / "debug.log", "2024-05-01 10:11:12,000 INFO MainThread:1 ...\n"),
        write(run_dir / "logs" / "debug-internal.log", "{}\n"),
    ]
    latest = wandb_dir / "latest-run"
    if not latest.is_symlink():
        latest.symlink_to(run_dir.name)
    return files


def test_wandb_run_with_env(tmp_path: Path) -> None:
    files = wandb_run(tmp_path)
    env = {"WANDB_ENTITY": "alice", "WANDB_PROJECT": "mnist", "WANDB_RUN_ID": WANDB_ID}
    run_dir = tmp_path / "wandb" / f"run-20240501_101112-{WANDB_ID}"
    assert detect(paths(*files), env) == [
        TrackerRun(
            tool="wandb",
            run_id=WANDB_ID,
            url=f"https://wandb.ai/alice/mnist/runs/{WANDB_ID}",
            project="alice/mnist",
            source=str(run_dir),
        )
    ]


def test_wandb_run_without_env_has_no_url(tmp_path: Path) -> None:
    files = wandb_run(tmp_path)
    [run] = detect(paths(*files), {})
    assert (run.tool, run.run_id, run.url, run.project) == ("wandb", WANDB_ID, None, None)
    [run] = detect(paths(*files), {"WANDB_PROJECT": "mnist"})  # entity unknown: no url
    assert (run.url, run.project) == (None, "mnist")


def test_wandb_base_url_maps_to_app(tmp_path: Path) -> None:
    files = paths(*wandb_run(tmp_path))
    env = {"WANDB_ENTITY": "team", "WANDB_PROJECT": "seg"}
    cases = {
        "https://api.wandb.ai": "https://wandb.ai",
        "https://api.wandb.ai/": "https://wandb.ai",
        "https://acme.wandb.io": "https://acme.wandb.io",
        "https://api.ml.example.com": "https://app.ml.example.com",
        "http://wandb.corp.example:8080/": "http://wandb.corp.example:8080",
    }
    for base, app in cases.items():
        [run] = detect(files, {**env, "WANDB_BASE_URL": base})
        assert run.url == f"{app}/team/seg/runs/{WANDB_ID}", base
    [run] = detect(files, {**env, "WANDB_APP_URL": "https://wb.example.org/"})
    assert run.url == f"https://wb.example.org/team/seg/runs/{WANDB_ID}"


def test_wandb_offline_run_has_no_url(tmp_path: Path) -> None:
    files = wandb_run(tmp_path, prefix="offline-run-")
    [run] = detect(paths(*files), {"WANDB_ENTITY": "alice", "WANDB_PROJECT": "mnist"})
    assert run == TrackerRun(
        "wandb",
        WANDB_ID,
        None,
        "alice/mnist",
        str(tmp_path / "wandb" / f"offline-run-20240501_101112-{WANDB_ID}"),
    )


def test_wandb_resumed_run_is_one_run(tmp_path: Path) -> None:
    first = wandb_run(tmp_path)
    second = write(tmp_path / "wandb" / f"run-20240502_080000-{WANDB_ID}" / "files" / "output.log")
    other = wandb_run(tmp_path, run_id="zz81abcd")
    runs = detect(paths(*first, second, *other), {})
    assert [r.run_id for r in runs] == [WANDB_ID, "zz81abcd"]
    assert runs[0].source.endswith(f"run-20240501_101112-{WANDB_ID}")


def test_wandb_env_without_run_dir_is_nothing(tmp_path: Path) -> None:
    out = write(tmp_path / "model.pt", b"\x80\x02")
    env = {"WANDB_RUN_ID": WANDB_ID, "WANDB_PROJECT": "mnist", "WANDB_ENTITY": "alice"}
    assert detect(paths(out), env) == []


def test_files_named_wandb_outside_a_run_dir(tmp_path: Path) -> None:
    files = [
        write(tmp_path / "results" / "wandb_export.csv", "run,loss\n3k9x2m7q,0.1\n"),
        write(tmp_path / "wandb-metadata.json", "{}"),
        write(tmp_path / "wandb" / "settings", "[default]\nproject = mnist\n"),
        write(tmp_path / "wandb" / "notes.txt", "x"),
        write(tmp_path / "wandb" / "run-latest" / "files" / "config.yaml", "a: 1\n"),
        write(tmp_path / "runs" / f"run-20240501_101112-{WANDB_ID}" / "out.txt", "x"),
        write(tmp_path / "my_wandb" / f"run-20240501_101112-{WANDB_ID}" / "out.txt", "x"),
    ]
    assert detect(paths(*files), {"WANDB_PROJECT": "mnist", "WANDB_ENTITY": "a"}) == []


# ---------------------------------------------------------------- MLflow


def mlflow_file_store(root: Path, exp: str = MLFLOW_EXP, run_id: str = MLFLOW_ID) -> list[Path]:
    """The files mlflow.start_run() + log_param/log_metric/log_artifact write to ./mlruns."""
    store = root / "mlruns"
    exp_dir = store / exp
    run_dir = exp_dir / run_id
    uri = (run_dir / "artifacts").as_uri()
    return [
        write(
            exp_dir / "meta.yaml",
            f"artifact_location: {exp_dir.as_uri()}\ncreation_time: 1714558272000\n"
            f"experiment_id: '{exp}'\nlast_update_time: 1714558272000\n"
            "lifecycle_stage: active\nname: mnist-sweep\n",
        ),
        write(
            run_dir / "meta.yaml",
            f"artifact_uri: {uri}\nend_time: 1714558300000\nentry_point_name: ''\n"
            f"experiment_id: '{exp}'\nlifecycle_stage: active\nrun_id: {run_id}\n"
            f"run_name: bright-owl-123\nrun_uuid: {run_id}\nsource_name: ''\nsource_type: 4\n"
            "source_version: ''\nstart_time: 1714558272000\nstatus: 3\ntags: []\n"
            "user_id: alice\n",
        ),
        write(run_dir / "params" / "lr", "0.001"),
        write(run_dir / "metrics" / "loss", "1714558280000 0.5 0\n1714558290000 0.12 1\n"),
        write(run_dir / "tags" / "mlflow.runName", "bright-owl-123"),
        write(run_dir / "tags" / "mlflow.user", "alice"),
        write(run_dir / "tags" / "mlflow.source.name", "train.py"),
        write(run_dir / "artifacts" / "model" / "MLmodel", "artifact_path: model\n"),
        write(run_dir / "artifacts" / "model" / "model.pkl", b"\x80\x04K\x01."),
    ]


def test_mlflow_file_store(tmp_path: Path) -> None:
    files = mlflow_file_store(tmp_path)
    run_dir = tmp_path / "mlruns" / MLFLOW_EXP / MLFLOW_ID
    expected = TrackerRun(
        tool="mlflow",
        run_id=MLFLOW_ID,
        url=str(run_dir),
        project=MLFLOW_EXP,
        source=str(run_dir / "meta.yaml"),
    )
    assert detect(paths(*files), {}) == [expected]
    # only an artifact written (meta.yaml written earlier by another step): same run
    assert detect(paths(files[-1]), {}) == [expected]
    # env naming the same run adds nothing
    assert detect(paths(*files), {"MLFLOW_RUN_ID": MLFLOW_ID}) == [expected]


def test_mlflow_default_experiment_and_long_artifact_uri(tmp_path: Path) -> None:
    deep = tmp_path / ("very long directory name " * 4).strip()
    files = mlflow_file_store(deep, exp="0")
    [run] = detect(paths(*files), {})
    assert (run.run_id, run.project) == (MLFLOW_ID, "0")


def test_mlflow_meta_yaml_must_agree(tmp_path: Path) -> None:
    other = "0" * 32
    bad = tmp_path / "mlruns" / "3" / MLFLOW_ID
    files = [
        write(bad / "meta.yaml", f"experiment_id: '3'\nrun_id: {other}\nrun_uuid: {other}\n"),
        write(bad / "metrics" / "loss", "1 0.5 0\n"),
        # the model registry also writes meta.yaml files, under names that are not run ids
        write(tmp_path / "mlruns" / "models" / "clf" / "version-1" / "meta.yaml", "version: 1\n"),
        # hex-named directories that are not MLflow's
        write(tmp_path / "data" / "2024" / MLFLOW_ID / "part-0.parquet", b"PAR1"),
        write(tmp_path / "cache" / "7" / MLFLOW_ID / "meta.yaml", "name: cache\n"),
    ]
    assert detect(paths(*files), {}) == []


def test_mlflow_database_backend_artifacts(tmp_path: Path) -> None:
    art = write(tmp_path / "mlruns" / "1" / MLFLOW_ID / "artifacts" / "model.pkl", b"\x80\x04.")
    db = write(tmp_path / "mlflow.db", b"SQLite format 3\x00")
    env = {"MLFLOW_TRACKING_URI": "https://mlflow.example.com/"}
    assert detect(paths(art, db), env) == [
        TrackerRun(
            tool="mlflow",
            run_id=MLFLOW_ID,
            url=f"https://mlflow.example.com/#/experiments/1/runs/{MLFLOW_ID}",
            project="1",
            source=str(tmp_path / "mlruns" / "1" / MLFLOW_ID),
        )
    ]
    [run] = detect(paths(art, db), {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"})
    assert (run.run_id, run.url, run.project) == (MLFLOW_ID, None, "1")


def test_mlflow_env_only_remote_run(tmp_path: Path) -> None:
    out = write(tmp_path / "model.pt", b"\x80\x02")
    env = {
        "MLFLOW_RUN_ID": MLFLOW_ID,
        "MLFLOW_TRACKING_URI": f"https://alice:{REDACTED}@mlflow.example.com:5000/base/?x=1",
        "MLFLOW_EXPERIMENT_ID": "7",
        "MLFLOW_TRACKING_TOKEN": REDACTED,
    }
    assert detect(paths(out), env) == [
        TrackerRun(
            tool="mlflow",
            run_id=MLFLOW_ID,
            url=f"https://mlflow.example.com:5000/base/#/experiments/7/runs/{MLFLOW_ID}",
            project="7",
            source="env MLFLOW_RUN_ID",
        )
    ]
    # experiment known by name only: no UI url (it needs the id)
    env = {"MLFLOW_RUN_ID": MLFLOW_ID, "MLFLOW_TRACKING_URI": "http://localhost:5000"}
    env["MLFLOW_EXPERIMENT_NAME"] = "mnist"
    assert detect([], env) == [TrackerRun("mlflow", MLFLOW_ID, None, "mnist", "env MLFLOW_RUN_ID")]
    assert detect([], {"MLFLOW_TRACKING_URI": "http://localhost:5000"}) == []


def test_mlflow_run_id_survives_redaction_and_a_redacted_value_is_unknown() -> None:
    # a tracker's run id is an identifier: redact_env keeps it, so the run is found
    env = redact_env([f"MLFLOW_RUN_ID={MLFLOW_ID}".encode()])
    assert env["MLFLOW_RUN_ID"] == MLFLOW_ID
    assert [r.run_id for r in detect([], env)] == [MLFLOW_ID]
    # a value the redactor did hide says nothing
    assert detect([], {"MLFLOW_RUN_ID": "<redacted>"}) == []


# ---------------------------------------------------------------- Neptune


def neptune_async(root: Path, mode: str = "async", name: str | None = None) -> list[Path]:
    """What neptune-client 1.x writes for neptune.init_run() in async (default) mode."""
    name = name or f"run__{NEPTUNE_UUID}__48213__k3j9x0qa"
    run_dir = root / ".neptune" / mode / name
    meta = {
        "mode": mode,
        "containerId": NEPTUNE_UUID,
        "containerType": "run",
        "structureVersion": 3,
        "os": "Linux-6.5.0-x86_64-with-glibc2.35",
        "pythonVersion": "3.11.9 (main, Apr  6 2024, 17:59:24) [GCC 11.4.0]",
        "neptuneClientVersion": "1.10.4",
        "createdAt": "2024-05-01T10:11:12.000000+00:00",
    }
    op = {"obj": {"type": "AssignFloat", "path": ["train", "lr"], "value": 0.001}, "version": 1}
    return [
        write(run_dir / "metadata.json", json.dumps(meta)),
        write(run_dir / "data-1.log", json.dumps(op) + "\n"),
        write(run_dir / "last_put_version", "1"),
        write(run_dir / "last_ack_version", "1"),
    ]


def test_neptune_async_run(tmp_path: Path) -> None:
    files = neptune_async(tmp_path)
    run_dir = tmp_path / ".neptune" / "async" / f"run__{NEPTUNE_UUID}__48213__k3j9x0qa"
    env = {"NEPTUNE_PROJECT": "acme/segmentation", "NEPTUNE_API_TOKEN": REDACTED}
    assert detect(paths(*files), env) == [
        TrackerRun(
            tool="neptune",
            run_id=NEPTUNE_UUID,
            url=None,
            project="acme/segmentation",
            source=str(run_dir / "metadata.json"),
        )
    ]


def test_neptune_offline_and_older_layouts(tmp_path: Path) -> None:
    [run] = detect(paths(*neptune_async(tmp_path, mode="offline")), {})
    assert (run.tool, run.run_id, run.project) == ("neptune", NEPTUNE_UUID, None)
    # neptune-client < 1.0: a container directory with exec-* children, no metadata.json
    child = tmp_path / ".neptune" / "async" / f"run__{NEPTUNE_UUID}" / "exec-1714558272-48213"
    old = write(child / "data-1.log", "{}\n")
    [run] = detect(paths(old), {})
    assert run.run_id == NEPTUNE_UUID
    assert run.source == str(tmp_path / ".neptune" / "async" / f"run__{NEPTUNE_UUID}")


def test_neptune_custom_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "scratch" / "neptune-data"
    f = write(data / "async" / f"run__{NEPTUNE_UUID}__9__abcdefgh" / "data-1.log", "{}\n")
    assert detect(paths(f), {}) == []
    [run] = detect(paths(f), {"NEPTUNE_DATA_DIRECTORY": str(data)})
    assert run.run_id == NEPTUNE_UUID
    [run] = detect(paths(f), {"NEPTUNE_DATA_DIRECTORY": "scratch/neptune-data"})
    assert run.run_id == NEPTUNE_UUID


def test_neptune_non_runs(tmp_path: Path) -> None:
    files = [
        *neptune_async(tmp_path, name=f"model__{NEPTUNE_UUID}__1__abcdefgh"),
        write(tmp_path / ".neptune" / "async" / "notes.txt", "x"),
        write(tmp_path / ".neptune" / "async" / "not-a-uuid" / "data-1.log", "{}"),
        write(tmp_path / "neptune" / "async" / f"run__{NEPTUNE_UUID}__1__abcdefgh" / "x", "{}"),
    ]
    assert detect(paths(*files), {"NEPTUNE_PROJECT": "acme/seg"}) == []


# ---------------------------------------------------------------- TensorBoard


def test_tensorboard_logdirs(tmp_path: Path) -> None:
    event = b'\x18\x00\x00\x00\x00\x00\x00\x00\xa3\x7fK"\t\x00\x00\x00\x00\x00\x00\x00\x00'
    train = write(
        tmp_path / "runs" / "May01_10-11-12_gpu01" / "events.out.tfevents.1714558272.gpu01.48213.0",
        event,
    )
    train2 = write(train.parent / "events.out.tfevents.1714558999.gpu01.48213.1", event)
    val = write(
        tmp_path
        / "logs"
        / "fit"
        / "validation"
        / "events.out.tfevents.1714558272.gpu01.48213.1.v2",
        event,
    )
    hparams = write(train.parent / "hparams.yaml", "lr: 0.001\n")
    runs = detect(paths(val, train2, hparams, train), {})
    assert runs == [
        TrackerRun("tensorboard", None, str(val.parent), None, str(val)),
        TrackerRun("tensorboard", None, str(train.parent), None, str(train)),
    ]


def test_runs_directory_is_not_tensorboard(tmp_path: Path) -> None:
    files = [
        write(tmp_path / "runs" / "exp1" / "metrics.csv", "step,loss\n0,1.0\n"),
        write(tmp_path / "runs" / "exp1" / "checkpoint.pt", b"\x80\x02"),
        write(tmp_path / "runs" / "exp1" / "my.events.out.tfevents.1", b""),
        write(tmp_path / "runs" / "exp1" / "events.out.tfevents", b""),
        write(tmp_path / "runs" / "exp1" / "Events.out.tfevents.1", b""),
    ]
    assert detect(paths(*files), {}) == []


# ---------------------------------------------------------------- all together


def test_all_tools_order_dedupe_and_no_secrets(tmp_path: Path) -> None:
    files = [
        *wandb_run(tmp_path),
        *mlflow_file_store(tmp_path),
        *neptune_async(tmp_path),
        write(tmp_path / "tb" / "events.out.tfevents.1714558272.gpu01.1.0", b"\x00"),
    ]
    env = {
        "WANDB_API_KEY": REDACTED,
        "WANDB_ENTITY": REDACTED,
        "WANDB_PROJECT": "mnist",
        "WANDB_BASE_URL": f"https://user:{REDACTED}@api.wandb.ai",
        "MLFLOW_TRACKING_URI": f"https://u:{REDACTED}@mlflow.example.com",
        "MLFLOW_RUN_ID": REDACTED,
        "NEPTUNE_API_TOKEN": REDACTED,
        "NEPTUNE_PROJECT": REDACTED,
        "NEPTUNE_CUSTOM_RUN_ID": REDACTED,
    }
    written = paths(*files)
    runs = detect(written + written[:3], env)
    assert [(r.tool, r.run_id) for r in runs] == [
        ("wandb", WANDB_ID),
        ("mlflow", MLFLOW_ID),
        ("neptune", NEPTUNE_UUID),
        ("tensorboard", None),
    ]
    assert runs[0].project == "mnist" and runs[0].url is None  # entity redacted: unknown
    assert runs[2].project is None
    assert REDACTED.encode() not in msgspec.json.encode(runs)
    shuffled = list(written)
    random.Random(7).shuffle(shuffled)
    assert detect(shuffled, env) == runs


def test_bad_input_never_raises(tmp_path: Path) -> None:
    weird = [
        b"relative/wandb/run-20240501_101112-abc/files/x",
        b"/",
        b"",
        b"/nonexistent/mlruns/0/" + MLFLOW_ID.encode() + b"/meta.yaml",
        b"/tmp/\xff\xfe/wandb/run-20240501_101112-ab\xffc/files/output.log",
        b"/tmp/\xff/.neptune/async/run__\xff__1__abcdefgh/data-1.log",
        b"/tmp/\xff/events.out.tfevents.1.host",
    ]
    unreadable = tmp_path / "mlruns" / "0" / MLFLOW_ID / "meta.yaml"
    unreadable.mkdir(parents=True)  # a directory where the file should be
    weird.append(os.fsencode(tmp_path / "mlruns" / "0" / MLFLOW_ID / "params" / "lr"))
    env = {"MLFLOW_TRACKING_URI": "http://[::1", "WANDB_BASE_URL": "::::", "MLFLOW_RUN_ID": " "}
    runs = detect(weird, env)
    assert [r.tool for r in runs] == ["wandb", "neptune", "tensorboard"]
    assert runs[0].run_id == "ab\\xffc"
    msgspec.msgpack.encode(runs)  # every string is valid UTF-8
