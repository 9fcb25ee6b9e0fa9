"""Experiment-tracker runs a process wrote: W&B, MLflow, Neptune, TensorBoard.

Only each tool's own on-disk layout and environment variables count; a path merely containing a
tool's name proves nothing. What is read:

* W&B: a written file under ``<wandb|.wandb>/run-YYYYMMDD_HHMMSS-<id>/`` or
  ``.../offline-run-YYYYMMDD_HHMMSS-<id>/`` (the layout wandb.init creates: ``run-<id>.wandb``,
  ``files/``, ``logs/``, ``tmp/``). The run id is the directory name's suffix. The entity and
  project are not in any text file of the run directory (``files/wandb-metadata.json`` holds host,
  program, git and hardware facts; ``files/config.yaml`` the run config; only the binary
  ``.wandb`` log has them, and it is not parsed), so they come from WANDB_ENTITY/WANDB_PROJECT.
  url = ``{app}/{entity}/{project}/runs/{id}`` when both are known and the run is not offline;
  app is WANDB_APP_URL, else WANDB_BASE_URL mapped as wandb does (``api.wandb.ai`` -> ``wandb.ai``,
  ``api.<host>`` -> ``app.<host>``, anything else as is), else https://wandb.ai. WANDB_RUN_ID
  alone (no run directory written) is not a run: wandb always writes one unless disabled.
* MLflow: a written file under ``<store>/<experiment_id>/<run_id>/`` (digits / 32 hex digits)
  whose ``meta.yaml`` (file store) says the same ``run_id`` (or ``run_uuid``) and
  ``experiment_id``; its top-level ``key: value`` lines are read without a YAML library. url =
  the run directory. With a database backend only artifacts are local, under
  ``mlruns/<experiment_id>/<run_id>/artifacts/``: that layout counts too, url from the tracking
  URI. Env: MLFLOW_RUN_ID (a run logging to a remote server writes nothing locally: recorded
  with source ``env MLFLOW_RUN_ID``), MLFLOW_TRACKING_URI (http(s) -> url
  ``{uri}/#/experiments/{experiment_id}/runs/{run_id}``, credentials, query and fragment
  dropped), MLFLOW_EXPERIMENT_ID, else MLFLOW_EXPERIMENT_NAME, as project.
* Neptune (neptune-client 1.x): a written file under ``.neptune/<async|offline|sync>/<dir>/``
  (or NEPTUNE_DATA_DIRECTORY instead of ``.neptune``), dir being ``run__<id>__<pid>__<key>``
  (1.x), ``run__<id>`` (older, with ``exec-*`` children) or a bare UUID (legacy). The run id is
  that ``<id>`` (the run's UUID; the short ``PROJ-123`` id is assigned by the server and is on
  disk nowhere, so url stays None). ``metadata.json`` (``containerType``) is checked when
  present. Project from NEPTUNE_PROJECT. Model/project containers are not runs.
* TensorBoard: files whose basename starts with ``events.out.tfevents.``; one run per directory
  (the logdir, also the url); run_id None.

Environment values holding ``<redacted>`` are treated as unset, so no redacted value (and no
API key, which is never read) reaches a TrackerRun. Unreadable or malformed files are skipped.
"""

from __future__ import annotations

import json
import os
import re
from urllib.parse import urlsplit, urlunsplit

from roar.model import TrackerRun
from roar.redact import REDACTED

_MAX_READ = 1 << 20  # tracker metadata files are small; never read more than this

_WANDB_PARENTS = frozenset({"wandb", ".wandb"})
_WANDB_RUN = re.compile(r"(offline-)?run-\d{8}_\d{6}-(.+)")
_WANDB_DEFAULT_APP = "https://wandb.ai"

_MLFLOW_RUN = re.compile(r"[0-9a-f]{32}")
_MLFLOW_EXPERIMENT = re.compile(r"\d+")
_MLFLOW_KEYS = frozenset({"run_id", "run_uuid", "experiment_id", "run_name", "artifact_uri"})

_NEPTUNE_DATA_DIR = ".neptune"
_NEPTUNE_MODES = frozenset({"async", "offline", "sync"})
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

_TFEVENTS = "events.out.tfevents."


def _show(path: str) -> str:
    """Display form of an fsdecoded path: undecodable bytes as backslash escapes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _env(env: dict[str, str], name: str) -> str | None:
    """A set, non-empty, unredacted environment value."""
    value = env.get(name)
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or REDACTED in value:
        return None
    return value


def _env_web(env: dict[str, str], name: str) -> str | None:
    """An http(s) URL from the environment, credentials dropped (their redacted form too)."""
    value = env.get(name)
    return _web_base(value.strip()) if isinstance(value, str) and value.strip() else None


def _web_base(uri: str) -> str | None:
    """An http(s) URI without credentials, query, fragment or trailing slash; None otherwise."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return None if REDACTED in base else base


def _read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_READ + 1)
    except OSError:
        return None
    if len(data) > _MAX_READ:
        return None
    return data.decode("utf-8", "replace")


# ---------------------------------------------------------------- W&B


def _wandb_app(env: dict[str, str]) -> str | None:
    if env.get("WANDB_APP_URL", "").strip():
        return _env_web(env, "WANDB_APP_URL")
    if not env.get("WANDB_BASE_URL", "").strip():
        return _WANDB_DEFAULT_APP
    web = _env_web(env, "WANDB_BASE_URL")
    if web is None:
        return None
    if "://api.wandb." in web:
        return web.replace("://api.", "://", 1)
    if "://api." in web:
        return web.replace("://api.", "://app.", 1)
    return web


def _wandb(split: list[list[str]], env: dict[str, str]) -> list[TrackerRun]:
    dirs: dict[str, tuple[str, bool]] = {}  # run directory -> (run id, offline)
    for parts in split:
        for i in range(len(parts) - 2, 0, -1):  # innermost run directory holding the file
            if parts[i - 1] not in _WANDB_PARENTS:
                continue
            m = _WANDB_RUN.fullmatch(parts[i])
            if m:
                dirs.setdefault("/".join(parts[: i + 1]), (m.group(2), bool(m.group(1))))
                break
    entity, project = _env(env, "WANDB_ENTITY"), _env(env, "WANDB_PROJECT")
    app = _wandb_app(env)
    out: dict[str, TrackerRun] = {}
    # online directories first, so a run both offline and synced gets its url
    for run_dir, (run_id, offline) in sorted(dirs.items(), key=lambda kv: (kv[1][1], kv[0])):
        if run_id in out:
            continue
        url = None
        if entity and project and app and not offline:
            url = f"{app}/{entity}/{project}/runs/{run_id}"
        shown = f"{entity}/{project}" if entity and project else project
        out[run_id] = TrackerRun("wandb", _show(run_id), url, shown, _show(run_dir))
    return list(out.values())


# ---------------------------------------------------------------- MLflow


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            decoded = json.loads(value)
        except ValueError:
            return value[1:-1]
        return decoded if isinstance(decoded, str) else value[1:-1]
    return value


def _yaml_scalars(text: str, keys: frozenset[str]) -> dict[str, str]:
    """Top-level `key: scalar` pairs of a block-style YAML mapping (as PyYAML dumps one),
    folded continuation lines joined; nested values and lists are ignored."""
    raw: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0] in " \t":
            if current is not None:
                raw[current] += " " + line.strip()
            continue
        key, sep, value = line.partition(":")
        current = None
        if sep and key in keys and key not in raw:
            raw[key] = value.strip()
            current = key
    return {k: _unquote(v) for k, v in raw.items()}


def _mlflow_ui(env: dict[str, str], experiment: str | None, run_id: str) -> str | None:
    base = _env_web(env, "MLFLOW_TRACKING_URI")
    if base is None or not experiment:
        return None
    return f"{base}/#/experiments/{experiment}/runs/{run_id}"


def _mlflow_dir(run_dir: str, parts: list[str], i: int, env: dict[str, str]) -> TrackerRun | None:
    run_id, experiment = parts[i], parts[i - 1]
    meta_path = run_dir + "/meta.yaml"
    text = _read_text(meta_path)
    if text is not None:
        meta = _yaml_scalars(text, _MLFLOW_KEYS)
        if (meta.get("run_id") or meta.get("run_uuid")) != run_id:
            return None
        if meta.get("experiment_id") != experiment:
            return None
        return TrackerRun("mlflow", run_id, _show(run_dir), experiment, _show(meta_path))
    if os.path.lexists(meta_path):  # there but unreadable: cannot confirm
        return None
    # database-backed tracking: only artifacts are local, in the default artifact root
    if i >= 2 and parts[i - 2] == "mlruns" and i + 2 < len(parts) and parts[i + 1] == "artifacts":
        url = _mlflow_ui(env, experiment, run_id)
        return TrackerRun("mlflow", run_id, url, experiment, _show(run_dir))
    return None


def _mlflow(split: list[list[str]], env: dict[str, str]) -> list[TrackerRun]:
    checked: dict[str, TrackerRun | None] = {}
    for parts in split:
        for i in range(len(parts) - 2, 1, -1):
            if len(parts[i]) != 32 or not _MLFLOW_RUN.fullmatch(parts[i]):
                continue
            if not _MLFLOW_EXPERIMENT.fullmatch(parts[i - 1]):
                continue
            run_dir = "/".join(parts[: i + 1])
            if run_dir not in checked:
                checked[run_dir] = _mlflow_dir(run_dir, parts, i, env)
            if checked[run_dir] is not None:
                break
    out: dict[str, TrackerRun] = {}
    for _, run in sorted(checked.items()):
        if run is not None and run.run_id is not None:
            out.setdefault(run.run_id, run)
    env_run = _env(env, "MLFLOW_RUN_ID")
    if env_run is not None and env_run not in out:
        experiment = _env(env, "MLFLOW_EXPERIMENT_ID")
        project = experiment or _env(env, "MLFLOW_EXPERIMENT_NAME")
        url = _mlflow_ui(env, experiment, env_run)
        out[env_run] = TrackerRun("mlflow", env_run, url, project, "env MLFLOW_RUN_ID")
    return list(out.values())


# ---------------------------------------------------------------- Neptune


def _neptune_run_id(name: str) -> str | None:
    """The run id a Neptune container directory is named for; None when not a run's."""
    fields = name.split("__")
    if len(fields) == 1:  # legacy: the bare run UUID
        return name if _UUID.fullmatch(name) else None
    if fields[0] != "run" or not fields[1]:
        return None
    if len(fields) == 2:
        return fields[1]
    if len(fields) in (4, 5) and fields[2].isdigit():
        return fields[1]
    return None


def _neptune_data_dir(parts: list[str], i: int, env: dict[str, str]) -> bool:
    """Whether parts[:i] is Neptune's data directory."""
    if parts[i - 1] == _NEPTUNE_DATA_DIR:
        return True
    custom = _env(env, "NEPTUNE_DATA_DIRECTORY")
    if custom is None:
        return False
    custom = os.path.normpath(custom)
    if os.path.isabs(custom):
        return "/".join(parts[:i]) == custom
    tail = [c for c in custom.split("/") if c and c != "."]
    return bool(tail) and ".." not in tail and i > len(tail) and parts[i - len(tail) : i] == tail


def _neptune(split: list[list[str]], env: dict[str, str]) -> list[TrackerRun]:
    dirs: dict[str, str] = {}  # container directory -> run id
    for parts in split:
        for i in range(len(parts) - 3, 1, -1):  # mode dir, container dir, then the file
            if parts[i] not in _NEPTUNE_MODES or not _neptune_data_dir(parts, i, env):
                continue
            run_id = _neptune_run_id(parts[i + 1])
            if run_id is not None:
                dirs.setdefault("/".join(parts[: i + 2]), run_id)
            break
    project = _env(env, "NEPTUNE_PROJECT")
    out: dict[str, TrackerRun] = {}
    for container, run_id in sorted(dirs.items()):
        if run_id in out:
            continue
        source = container
        meta_path = container + "/metadata.json"
        text = _read_text(meta_path)
        if text is not None:
            try:
                meta = json.loads(text)
            except ValueError:
                meta = None
            if isinstance(meta, dict):
                if meta.get("containerType", "run") != "run":
                    continue
                source = meta_path
        out[run_id] = TrackerRun("neptune", _show(run_id), None, project, _show(source))
    return list(out.values())


# ---------------------------------------------------------------- TensorBoard


def _tensorboard(paths: list[str]) -> list[TrackerRun]:
    logdirs: dict[str, str] = {}  # logdir -> its first event file
    for p in paths:
        logdir, base = os.path.split(p)
        if base.startswith(_TFEVENTS) and logdir:
            logdirs.setdefault(logdir, p)
    return [
        TrackerRun("tensorboard", None, _show(d), None, _show(f))
        for d, f in sorted(logdirs.items())
    ]


# ---------------------------------------------------------------- entry point


def _clean(run: TrackerRun) -> TrackerRun:
    """Last guard: a field holding a redaction marker is unknown, not a fact."""
    for field in ("run_id", "url", "project"):
        value = getattr(run, field)
        if value is not None and REDACTED in value:
            setattr(run, field, None)
    return run


def detect(written: list[bytes], env: dict[str, str]) -> list[TrackerRun]:
    """The tracker runs evidenced by the files a run wrote (absolute paths) and its (redacted)
    environment: one per tool and run id (per logdir for TensorBoard), ordered by tool (W&B,
    MLflow, Neptune, TensorBoard) then path, whatever the order of `written`."""
    paths = sorted(
        {
            os.path.normpath(os.fsdecode(p))
            for p in written
            if isinstance(p, bytes) and p.startswith(b"/")
        }
    )
    split = [p.split("/") for p in paths]
    runs = [*_wandb(split, env), *_mlflow(split, env), *_neptune(split, env), *_tensorboard(paths)]
    return [_clean(r) for r in runs]
