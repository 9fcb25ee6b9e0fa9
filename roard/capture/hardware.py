"""The machine a run happened on. Computed once per daemon process: hardware does not change."""

from __future__ import annotations

import functools
import os
import platform
import shutil
import socket
import subprocess

from roar.model import Hardware

_GPU_QUERY = ["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
_GPU_TIMEOUT = 5.0


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _os_name() -> str:
    for line in _read("/etc/os-release").splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME" and value.strip().strip("\"'"):
            return value.strip().strip("\"'")
    return platform.system() or "unknown"


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        key, sep, value = line.partition(":")
        # x86: "model name"; some ARM kernels: "Model" or "Hardware"
        if sep and key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def _memory_bytes() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1]) * 1024
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def _gpus() -> list[str]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        proc = subprocess.run(
            [exe, *_GPU_QUERY],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=_GPU_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if proc.returncode != 0:
        return []
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


@functools.cache
def hardware() -> Hardware:
    """OS, kernel, architecture, host, CPU, memory and NVIDIA GPUs of this machine."""
    return Hardware(
        os=_os_name(),
        kernel=platform.release(),
        arch=platform.machine(),
        hostname=socket.gethostname(),
        cpu=_cpu_model(),
        cpus=os.cpu_count() or 1,
        memory_bytes=_memory_bytes(),
        gpus=_gpus(),
    )
