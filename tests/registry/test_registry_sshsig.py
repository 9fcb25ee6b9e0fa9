"""roar.sshsig against the real OpenSSH tools: signatures made by `ssh-keygen -Y sign` verify with
ours, ours verify with `ssh-keygen -Y verify`, for ed25519, ecdsa and rsa keys, from key files and
through a real ssh-agent; the wrong namespace or a changed message does not verify."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from registry_support import make_key

from roar import sshsig

pytest_plugins = ["registry_support"]  # the fixtures

KINDS = ["ed25519", "ecdsa", "rsa"]
MESSAGE = b"GET /api/v1/artifacts/abc\n\n1700000000\n"


def _keygen_verify(key: sshsig.PublicKey, blob: bytes, message: bytes, tmp: Path) -> bool:
    signers = tmp / "allowed_signers"
    signers.write_text(f"tester {key.openssh}\n")
    sig = tmp / "msg.sig"
    sig.write_text(sshsig.armor(blob))
    command = ["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "tester", "-n", "glaas"]
    done = subprocess.run(
        [*command, "-s", str(sig)],
        input=message,
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def _fingerprint(pub: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, check=True)
    return out.stdout.decode().split()[1]


@pytest.mark.parametrize("kind", KINDS)
def test_ssh_keygen_signatures_verify_and_ours_verify_with_ssh_keygen(
    kind: str, key_dir: Path, tmp_path: Path
) -> None:
    key = make_key(key_dir, "signer", kind)
    assert key.public.fingerprint == _fingerprint(Path(f"{key.path}.pub"))

    theirs = sshsig.keygen_signer("glaas", str(key.path))(MESSAGE)
    assert sshsig.verify(theirs, MESSAGE, "glaas") == key.public

    ours = key.sign(MESSAGE)
    assert sshsig.verify(ours, MESSAGE, "glaas") == key.public
    assert _keygen_verify(key.public, ours, MESSAGE, tmp_path)
    assert not _keygen_verify(key.public, ours, MESSAGE + b"x", tmp_path)


@pytest.mark.parametrize("kind", KINDS)
def test_signing_through_the_ssh_agent(
    kind: str, key_dir: Path, agent: str, tmp_path: Path
) -> None:
    key = make_key(key_dir, "agent", kind)
    env = {**os.environ, "SSH_AUTH_SOCK": agent}
    subprocess.run(["ssh-add", "-q", str(key.path)], env=env, check=True, capture_output=True)
    listed = sshsig.agent_keys(agent)
    assert [k for k, _ in listed] == [key.public] and listed[0][1] == "agent"

    blob = sshsig.agent_signer("glaas", key.public, agent)(MESSAGE)
    assert sshsig.verify(blob, MESSAGE, "glaas") == key.public
    assert _keygen_verify(key.public, blob, MESSAGE, tmp_path)


def test_what_does_not_verify(key_dir: Path) -> None:
    key = make_key(key_dir, "signer", "ed25519")
    blob = key.sign(MESSAGE)
    with pytest.raises(sshsig.BadSignature, match="does not match"):
        sshsig.verify(blob, MESSAGE + b"tampered", "glaas")
    git = sshsig.keygen_signer("git", str(key.path))(MESSAGE)
    with pytest.raises(sshsig.BadSignature, match="namespace 'git'"):
        sshsig.verify(git, MESSAGE, "glaas")
    for broken in (b"", b"SSHSIG", blob[:-5], blob + b"\0", b"NOTSIG" + blob[6:]):
        with pytest.raises(sshsig.BadSignature):
            sshsig.verify(broken, MESSAGE, "glaas")
    other = make_key(key_dir, "other", "ed25519")
    swapped = blob.replace(key.public.blob, other.public.blob)
    with pytest.raises(sshsig.BadSignature):
        sshsig.verify(swapped, MESSAGE, "glaas")


def test_public_key_lines_are_checked(key_dir: Path) -> None:
    from roar.errors import Invalid

    key = make_key(key_dir, "signer", "ed25519")
    assert sshsig.parse_public_key(key.public_line) == key.public
    for bad in (
        "",
        "ssh-ed25519",
        "ssh-dss AAAAB3NzaC1kc3M=",
        "ssh-ed25519 !!!",
        "ssh-rsa " + key.public_line.split()[1],
    ):
        with pytest.raises(Invalid):
            sshsig.parse_public_key(bad)


def test_an_agent_that_is_not_running_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        sshsig.agent_keys(str(tmp_path / "nothing.sock"))
    env = os.environ.pop("SSH_AUTH_SOCK", None)
    try:
        with pytest.raises(sshsig.AgentError, match="SSH_AUTH_SOCK"):
            sshsig.agent_keys()
    finally:
        if env is not None:
            os.environ["SSH_AUTH_SOCK"] = env
