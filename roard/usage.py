"""Compute accounting on roard's side: a finished run's usage (CPU, memory and wall time, as the
tracer measured them) completed with the GPUs the job could see.

A job sees the machine's NVIDIA GPUs (`nvidia-smi`, roard.capture.hardware), narrowed by its
CUDA_VISIBLE_DEVICES as CUDA reads it: a comma-separated list of indices or `GPU-`/`MIG-` UUIDs,
cut at the first entry that names no device; set but empty, none. Without NVML sampling, its
GPU-seconds are the GPUs it could see times its wall time.
"""

from __future__ import annotations

import math

import msgspec

from roar.model import Usage


def _model(line: str) -> str:
    """The GPU's name from an `nvidia-smi --query-gpu=name,...` line."""
    return line.split(",", 1)[0].strip()


def visible_gpus(gpus: list[str], cuda_visible: str | None) -> list[str]:
    """The models of the GPUs a job could use, of the machine's `gpus`."""
    if cuda_visible is None:
        return [_model(g) for g in gpus]
    seen: list[str] = []
    for entry in cuda_visible.split(","):
        entry = entry.strip()
        if entry.isdigit() and int(entry) < len(gpus):
            seen.append(_model(gpus[int(entry)]))
        elif entry.startswith(("GPU-", "MIG-")) and gpus:
            seen.append(_model(gpus[0]))  # a UUID: the machine's model (one kind per host)
        else:
            break  # CUDA stops at the first entry that is no device
    return seen[: len(gpus)]


def _env_value(env: list[bytes], name: bytes) -> str | None:
    value = None
    for entry in env:
        key, sep, rest = entry.partition(b"=")
        if sep and key == name:
            value = rest.decode("utf-8", "replace")
    return value


def _finite(x: float) -> float:
    return x if math.isfinite(x) and x > 0 else 0.0


def complete(usage: Usage | None, env: list[bytes], gpus: list[str]) -> Usage | None:
    """The run's usage as stored: the tracer's numbers (checked: finite, not negative) and the
    GPUs visible to it. None when the tracer measured nothing (the root was never reaped)."""
    if usage is None:
        return None
    models = visible_gpus(gpus, _env_value(env, b"CUDA_VISIBLE_DEVICES"))
    user, system = _finite(usage.user_seconds), _finite(usage.system_seconds)
    wall = _finite(usage.wall_seconds)
    return msgspec.structs.replace(
        usage,
        cpu_seconds=user + system,
        user_seconds=user,
        system_seconds=system,
        max_rss_bytes=max(0, usage.max_rss_bytes),
        wall_seconds=wall,
        gpus=len(models),
        gpu_model="; ".join(sorted(set(models))) or None,
        gpu_seconds=len(models) * wall,
    )
