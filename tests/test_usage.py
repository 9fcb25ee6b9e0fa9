"""Compute accounting on the machine: every job records what its whole process tree used (CPU
from the tracer's wait4 rusage, peak memory, wall time) and the GPUs it could see; roard keeps
it (schema 7) and `show` tells it. The registry's side is in tests/registry/test_compute.py."""

from __future__ import annotations

import sys

from conftest import Roar

from roar.model import Usage
from roard.usage import complete, visible_gpus

BURN = """
import sys, time
end = time.process_time() + float(sys.argv[1])
while time.process_time() < end:
    pass
"""

ALLOC = """
import sys
block = bytearray(200 * 1024 * 1024)
for i in range(0, len(block), 4096):  # touch every page: resident, not just reserved
    block[i] = 1
print(len(block))
"""


def test_cpu_of_two_busy_children_is_summed(roar: Roar) -> None:
    """A shell starts two children that each burn 0.5 s of CPU: the job's CPU is their sum,
    though neither is the process roar started."""
    (roar.work / "burn.py").write_text(BURN)
    roar.chown(roar.work)
    py = sys.executable
    job = roar.run("sh", "-c", f"{py} burn.py 0.5 & {py} burn.py 0.5 & wait")
    used = job["usage"]
    assert used["cpu_seconds"] > 0.9  # two times 0.5 s of CPU, whatever the wall clock did
    assert used["cpu_seconds"] < 1.9  # waited for by sh: in the root's rusage, not again
    assert abs(used["cpu_seconds"] - used["user_seconds"] - used["system_seconds"]) < 1e-6
    assert used["wall_seconds"] > 0
    assert used["gpus"] == 0 and used["gpu_seconds"] == 0 and used["gpu_model"] is None
    shown = roar("show", job["job"]["id"]).stdout
    assert "used      CPU " in shown and "no GPU" in shown


def test_cpu_of_a_child_left_running_is_counted(roar: Roar) -> None:
    """The shell exits at once, leaving its child to burn 0.5 s on its own (roar waits for
    it): nobody waits for that child, so the root's rusage lacks it; it counts all the same."""
    (roar.work / "burn.py").write_text(BURN)
    roar.chown(roar.work)
    job = roar.run("sh", "-c", f"{sys.executable} burn.py 0.5 > /dev/null 2>&1 & exit 0")
    assert job["usage"]["cpu_seconds"] > 0.4


def test_peak_memory_of_a_200_mb_process(roar: Roar) -> None:
    (roar.work / "alloc.py").write_text(ALLOC)
    roar.chown(roar.work)
    job = roar.run("sh", "-c", f"{sys.executable} alloc.py > n.txt")
    assert job["usage"]["max_rss_bytes"] >= 200 * 1024 * 1024
    log = roar.json("log", "--all")
    assert len(log) == 1


def test_a_job_from_before_usage_shows_none(roar: Roar) -> None:
    """Usage is new in the record: a job of a schema-1 store has none, and says nothing."""
    from test_store import DATA, V1_JOBS, _install_db

    _install_db(roar, DATA / "store-v1.db")
    job_id = next(iter(V1_JOBS))
    assert roar.json("show", job_id)["job"]["usage"] is None
    assert "used " not in roar("show", job_id).stdout


def test_visible_gpus_follow_cuda_visible_devices() -> None:
    h100 = "NVIDIA H100 80GB HBM3, 81559 MiB, 535.104.05"
    a10 = "NVIDIA A10, 23028 MiB, 535.104.05"
    machine = [h100, h100, a10]
    assert visible_gpus(machine, None) == ["NVIDIA H100 80GB HBM3"] * 2 + ["NVIDIA A10"]
    assert visible_gpus(machine, "2") == ["NVIDIA A10"]
    assert visible_gpus(machine, "0,1") == ["NVIDIA H100 80GB HBM3"] * 2
    assert visible_gpus(machine, "") == []
    assert visible_gpus(machine, "-1") == []
    assert visible_gpus(machine, "1,7,0") == ["NVIDIA H100 80GB HBM3"]  # CUDA stops at 7
    assert visible_gpus(machine, "GPU-8d1c2e") == ["NVIDIA H100 80GB HBM3"]
    assert visible_gpus([], "0,1") == []  # no nvidia-smi here: no GPU, whatever the variable


def test_roard_checks_the_tracers_numbers_and_adds_the_gpus() -> None:
    """What a client sends is checked (a NaN or negative time is 0), and the GPUs come from
    the machine and the job's environment, never from the client."""
    sent = Usage(user_seconds=float("nan"), system_seconds=-3.0, wall_seconds=10.0, gpus=99)
    h100 = "NVIDIA H100 80GB HBM3, 81559 MiB, 535.104.05"
    used = complete(sent, [b"PATH=/bin", b"CUDA_VISIBLE_DEVICES=1"], [h100, h100])
    assert used is not None
    assert (used.cpu_seconds, used.user_seconds, used.system_seconds) == (0.0, 0.0, 0.0)
    assert (used.gpus, used.gpu_model, used.gpu_seconds) == (1, "NVIDIA H100 80GB HBM3", 10.0)
    everything = complete(Usage(wall_seconds=2.0), [], [h100, h100])
    assert everything is not None and everything.gpu_seconds == 4.0
    assert complete(None, [], [h100]) is None
