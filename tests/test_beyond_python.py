"""What a job used beyond Python: the system packages owning the programs and libraries it ran
(dpkg here; rpm's answer parsed), the active conda environment, the container; recorded by a
real roard for a real run, shown by `show`, compared by `diff`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import Roar

from roar.model import Container, Package
from roard.capture import system

HAS_DPKG = system.manager() == "dpkg" and shutil.which("dpkg-query") is not None


def _dpkg_version(package: str) -> str:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True
    )
    return out.stdout


@pytest.mark.skipif(not HAS_DPKG, reason="needs dpkg")
def test_the_owners_of_resolved_programs_and_libraries_come_from_dpkg_with_versions() -> None:
    dash = os.path.realpath(b"/bin/sh")  # /usr/bin/dash on a merged-/usr Debian
    libc = os.path.realpath(b"/lib/x86_64-linux-gnu/libc.so.6")
    found = system.packages([dash, libc, b"/tmp/not-a-system-file.txt", b"/usr/bin/no-such"])
    assert found is not None and found.manager == "dpkg"
    names = {p.name: p.version for p in found.packages}
    owner = next(n for n in names if n.startswith("dash"))
    assert names[owner] == _dpkg_version("dash")
    libc6 = next(n for n in names if n.startswith("libc6"))
    assert names[libc6] == _dpkg_version(libc6)
    assert found.unowned == 1  # /usr/bin/no-such; the .txt is neither a program nor a library
    assert system.installed([libc6, "no-such-package"], "dpkg") == {
        libc6: names[libc6],
        "no-such-package": None,
    }


@pytest.mark.skipif(not HAS_DPKG, reason="needs dpkg")
def test_the_dpkg_index_is_read_once_and_again_only_when_dpkg_changes(tmp_path: Path) -> None:
    root = tmp_path / "dpkg"
    (root / "info").mkdir(parents=True)
    (root / "status").write_text(
        "Package: tool\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0\n\n"
    )
    (root / "info" / "tool.list").write_text("/usr/bin/tool\n/usr/share/doc/tool\n")
    db = system._Dpkg(str(root))
    first = db.fresh().owners
    assert first[b"/usr/bin/tool"] == "tool" and db.versions["tool:amd64"] == "1.0"
    assert db.fresh().owners is first  # not read again
    (root / "status").write_text(
        "Package: tool\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.0\n\n"
    )
    os.utime(root / "status", ns=(1, 1))  # the dpkg database changed
    assert db.fresh().owners is not first and db.versions["tool"] == "2.0"


def test_rpm_answers_are_read_line_by_line() -> None:
    out = (
        "glibc.x86_64 2.34-100.el9\n"
        "file /opt/x/bin/tool is not owned by any package\n"
        "bash.x86_64 5.1.8-6.el9\n"
    )
    assert system.parse_rpm(out, 4) == [
        Package("glibc.x86_64", "2.34-100.el9"),
        None,
        Package("bash.x86_64", "5.1.8-6.el9"),
        None,
    ]


def test_a_conda_environment_is_read_from_its_conda_meta(tmp_path: Path) -> None:
    prefix = tmp_path / "envs" / "ml"
    meta = prefix / "conda-meta"
    meta.mkdir(parents=True)
    for name, version in [("numpy", "1.26.4"), ("python", "3.11.9")]:
        (meta / f"{name}-{version}-h0.json").write_text(
            json.dumps({"name": name, "version": version, "build": "h0"})
        )
    (meta / "history").write_text("not json")
    env = system.conda({"CONDA_PREFIX": str(prefix), "CONDA_DEFAULT_ENV": "ml"})
    assert env is not None and env.name == "ml" and env.prefix == str(prefix)
    assert env.packages == [Package("numpy", "1.26.4"), Package("python", "3.11.9")]
    assert system.conda({"PATH": "/usr/bin"}) is None


def test_containers_are_told_from_what_the_runtimes_leave(tmp_path: Path) -> None:
    podman = tmp_path / "podman"
    (podman / "run").mkdir(parents=True)
    (podman / "run/.containerenv").write_text(
        'engine="podman-4.9.3"\nname="box"\nid="abc123"\nimage="docker.io/library/python:3.11"\n'
    )
    assert system.container(str(podman)) == Container(
        "podman", "docker.io/library/python:3.11", "abc123"
    )
    docker = tmp_path / "docker"
    (docker / "proc/self").mkdir(parents=True)
    (docker / ".dockerenv").write_text("")
    (docker / "proc/self/cgroup").write_text(f"0::/docker/{'e' * 64}\n")
    assert system.container(str(docker)) == Container("docker", None, "e" * 12)
    assert system.container(str(tmp_path / "bare")) is None


def test_a_run_records_its_system_packages_conda_env_and_container(roar: Roar) -> None:
    prefix = roar.work / "conda" / "envs" / "tools"
    (prefix / "conda-meta").mkdir(parents=True)
    (prefix / "conda-meta" / "zlib-1.3-h0.json").write_text(
        json.dumps({"name": "zlib", "version": "1.3"})
    )
    roar.chown(roar.work / "conda")
    env = {"CONDA_PREFIX": str(prefix), "CONDA_DEFAULT_ENV": "tools"}
    roar("run", "--", "sh", "-c", "cat /etc/hostname > out.txt", env=env)
    job = roar.last_job()
    if HAS_DPKG:
        system_pkgs = {p[0] for p in job["system"]["packages"]}
        assert job["system"]["manager"] == "dpkg"
        assert any(n.startswith("dash") for n in system_pkgs)  # sh
        assert any(n.startswith("coreutils") for n in system_pkgs)  # cat
        assert any(n.startswith("libc6") for n in system_pkgs)
    assert job["conda"] == {"prefix": str(prefix), "name": "tools", "packages": [["zlib", "1.3"]]}
    here = system.container()
    assert job["container"] == (
        None if here is None else {"runtime": here.runtime, "image": here.image, "id": here.id}
    )
    shown = roar("show", job["job"]["id"]).stdout
    assert "conda     tools" in shown
    if HAS_DPKG:
        assert "system    dpkg: " in shown and "dash" in shown
    # diff names what differs beyond Python: here the conda environment
    roar("run", "--", "sh", "-c", "cat /etc/hostname > out2.txt")
    other = roar.last_job()
    entries = roar.json("diff", job["job"]["id"], other["job"]["id"])["entries"]
    fields = {e["field"]: e for e in entries}
    assert (
        fields["conda environment"]["a"] == str(prefix) and fields["conda environment"]["b"] is None
    )
    assert fields["conda package zlib"]["a"] == "1.3"
