"""Which SSH key signs this user's registry requests, from the `registry.key` setting:

- "" (the default): the first key of the running ssh-agent (`SSH_AUTH_SOCK`);
- a public key file (`~/.ssh/id_ed25519.pub`): that key, whose private half is in the agent;
- a private key file: that key, read in-process when unencrypted, else through the agent
  (its `.pub` beside it names it);
- "none" (`roarctl auth logout`): nothing is signed.

Used by roard (registration) and roarctl (auth, reads). A key that cannot sign is an
`Unauthorized` failure whose hint says what to do, including for a roard started by systemd
without the session's `SSH_AUTH_SOCK`.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from roar.config import UNSIGNED
from roar.errors import Unauthorized
from roar.registry import NAMESPACE
from roar.sshsig import AgentError, PublicKey, Signer, agent_keys, agent_signer, parse_public_key

NO_AGENT_HINT = (
    "start ssh-agent and `ssh-add` your key, or name a key file: "
    "roarctl config set registry.key ~/.ssh/id_ed25519. A roard started by systemd does not "
    "see your session's agent: `systemctl --user set-environment SSH_AUTH_SOCK=$SSH_AUTH_SOCK` "
    "then `roarctl daemon stop` (it restarts on next use)"
)


class Signing(NamedTuple):
    key: PublicKey
    sign: Signer  # blocking (a socket to the agent): call it off the event loop
    source: str  # "ssh-agent", or the key file


def signing(setting: str, agent: str | None = None) -> Signing | None:
    """The key that signs, from `registry.key` (None: "none", unsigned). `agent` is an
    ssh-agent socket to use instead of $SSH_AUTH_SOCK."""
    setting = setting.strip()
    if setting == UNSIGNED:
        return None
    sock = agent or os.environ.get("SSH_AUTH_SOCK") or None
    if not setting:
        keys = _agent_keys(sock)
        if not keys:
            raise Unauthorized(
                "ssh-agent holds no key to sign registry requests with",
                "add one: ssh-add ~/.ssh/id_ed25519 (or set registry.key to a key file)",
            )
        return Signing(keys[0], agent_signer(NAMESPACE, keys[0], sock), "ssh-agent")
    path = os.path.expanduser(setting)
    try:
        with open(path, "rb") as f:
            text = f.read(64 * 1024)
    except OSError as exc:
        raise Unauthorized(
            f"cannot read registry.key {path}: {exc.strerror}",
            "roarctl config set registry.key PATH (a private key, or a .pub in ssh-agent)",
        ) from None
    if text.lstrip().startswith(b"-----BEGIN"):
        return _private(path, sock)
    try:
        public = parse_public_key(text.decode(errors="replace"))
    except Exception:
        raise Unauthorized(f"registry.key {path} is not an SSH key file") from None
    return _in_agent(public, path, sock)


def _agent_keys(sock: str | None) -> list[PublicKey]:
    if not sock:
        raise Unauthorized(
            "no SSH key to sign registry requests: SSH_AUTH_SOCK is not set and registry.key "
            "names no key file",
            NO_AGENT_HINT,
        )
    try:
        return [key for key, _comment in agent_keys(sock)]
    except (AgentError, OSError) as exc:
        raise Unauthorized(f"cannot use ssh-agent at {sock}: {exc}", NO_AGENT_HINT) from None


def _in_agent(public: PublicKey, path: str, sock: str | None) -> Signing:
    if public not in _agent_keys(sock):
        private = path.removesuffix(".pub")
        raise Unauthorized(
            f"the private half of {path} ({public.fingerprint}) is not in ssh-agent",
            f"ssh-add {private}",
        )
    return Signing(public, agent_signer(NAMESPACE, public, sock), f"{path} (ssh-agent)")


def _private(path: str, sock: str | None) -> Signing:
    from roar.sshsig import key_file_signer

    try:
        public, sign = key_file_signer(NAMESPACE, path)
    except (TypeError, ValueError) as exc:  # encrypted (TypeError), or a format we cannot read
        pub_file = path + ".pub"
        if sock and os.path.exists(pub_file):
            with open(pub_file) as f:
                return _in_agent(parse_public_key(f.read()), path, sock)
        encrypted = "encrypted" in str(exc) or isinstance(exc, TypeError)
        raise Unauthorized(
            f"cannot sign with {path}: "
            + ("it is encrypted" if encrypted else f"unreadable key ({exc})"),
            f"add it to ssh-agent (ssh-add {path}) and keep {pub_file} beside it",
        ) from None
    return Signing(public, sign, path)
