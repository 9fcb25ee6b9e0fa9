"""SSH signatures in the `ssh-keygen -Y sign` format (OpenSSH's PROTOCOL.sshsig), and the three
ways to make one: through the running ssh-agent, with `ssh-keygen` and a key file, or in-process
from an unencrypted key file.

A signature binds a message to a namespace (the registry uses "glaas"), so a signature made for
git commits or for another service cannot be replayed here. Verification parses the blob and
checks it with `cryptography` (ed25519, ecdsa nistp256/384/521, rsa-sha2-256/512); that import is
lazy, so clients that only sign never load it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import subprocess
from collections.abc import Callable
from typing import NamedTuple

from roar.errors import Invalid

MAGIC = b"SSHSIG"
VERSION = 1
ARMOR_BEGIN = "-----BEGIN SSH SIGNATURE-----"
ARMOR_END = "-----END SSH SIGNATURE-----"
KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
    }
)


class BadSignature(Exception):
    """A signature that does not verify; the message says why (shown to the client)."""


# ---------------------------------------------------------------- the SSH wire encoding


def _string(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def string(self) -> bytes:
        if self.pos + 4 > len(self.data):
            raise BadSignature("truncated signature")
        (n,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos += 4
        if self.pos + n > len(self.data):
            raise BadSignature("truncated signature")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint32(self) -> int:
        if self.pos + 4 > len(self.data):
            raise BadSignature("truncated signature")
        (n,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos += 4
        return n

    def done(self) -> bool:
        return self.pos == len(self.data)


# ---------------------------------------------------------------- public keys


class PublicKey(NamedTuple):
    type: str
    blob: bytes  # the SSH wire form

    @property
    def fingerprint(self) -> str:
        """As `ssh-keygen -l` prints it: SHA256:<unpadded base64>."""
        digest = base64.b64encode(hashlib.sha256(self.blob).digest()).decode().rstrip("=")
        return f"SHA256:{digest}"

    @property
    def openssh(self) -> str:
        return f"{self.type} {base64.b64encode(self.blob).decode()}"


def parse_public_key(line: str) -> PublicKey:
    """An `authorized_keys`-style line ("ssh-ed25519 AAAA... comment") -> PublicKey."""
    fields = line.strip().split()
    if len(fields) < 2:
        raise Invalid(f"not an SSH public key: {line.strip()[:40]!r}")
    kind, b64 = fields[0], fields[1]
    if kind not in KEY_TYPES:
        raise Invalid(f"unsupported SSH key type {kind!r}", "use an ed25519, ecdsa or rsa key")
    try:
        blob = base64.b64decode(b64, validate=True)
        embedded = _Reader(blob).string().decode()
    except (ValueError, BadSignature) as e:
        raise Invalid(f"not an SSH public key: {b64[:20]!r}...") from e
    if embedded != kind:
        raise Invalid(f"the key says it is {embedded!r}, not {kind!r}")
    return PublicKey(kind, blob)


# ---------------------------------------------------------------- the SSHSIG envelope


def signed_data(namespace: str, message: bytes, hash_alg: str = "sha512") -> bytes:
    """What the key actually signs: the namespace and the message's hash, never the message."""
    digest = hashlib.new(hash_alg, message).digest()
    return (
        MAGIC
        + _string(namespace.encode())
        + _string(b"")
        + _string(hash_alg.encode())
        + (_string(digest))
    )


def envelope(key_blob: bytes, namespace: str, signature: bytes, hash_alg: str = "sha512") -> bytes:
    """The binary SSHSIG blob around an SSH signature (string alg + string sig)."""
    return (
        MAGIC
        + struct.pack(">I", VERSION)
        + _string(key_blob)
        + _string(namespace.encode())
        + _string(b"")
        + _string(hash_alg.encode())
        + _string(signature)
    )


def armor(blob: bytes) -> str:
    b64 = base64.b64encode(blob).decode()
    lines = [b64[i : i + 70] for i in range(0, len(b64), 70)]
    return "\n".join([ARMOR_BEGIN, *lines, ARMOR_END]) + "\n"


def unarmor(text: str) -> bytes:
    body = text.strip()
    if not (body.startswith(ARMOR_BEGIN) and body.endswith(ARMOR_END)):
        raise BadSignature("not an armored SSH signature")
    try:
        return base64.b64decode("".join(body[len(ARMOR_BEGIN) : -len(ARMOR_END)].split()))
    except ValueError as e:
        raise BadSignature("not an armored SSH signature") from e


class Parsed(NamedTuple):
    key: PublicKey
    namespace: str
    hash_alg: str
    sig_alg: str
    sig: bytes


def parse(blob: bytes) -> Parsed:
    if not blob.startswith(MAGIC):
        raise BadSignature("not an SSHSIG signature")
    r = _Reader(blob)
    r.pos = len(MAGIC)
    if r.uint32() != VERSION:
        raise BadSignature("unsupported SSHSIG version")
    key_blob = r.string()
    namespace = r.string().decode(errors="replace")
    r.string()  # reserved
    hash_alg = r.string().decode(errors="replace")
    inner = _Reader(r.string())
    sig_alg = inner.string().decode(errors="replace")
    sig = inner.string()
    if not (r.done() and inner.done()):
        raise BadSignature("trailing bytes in signature")
    try:
        key_type = _Reader(key_blob).string().decode()
    except UnicodeDecodeError as e:
        raise BadSignature("malformed public key in signature") from e
    return Parsed(PublicKey(key_type, key_blob), namespace, hash_alg, sig_alg, sig)


_EC_HASH = {"nistp256": "SHA256", "nistp384": "SHA384", "nistp521": "SHA512"}


def verify(blob: bytes, message: bytes, namespace: str) -> PublicKey:
    """Check an SSHSIG blob over `message` in `namespace`; return the key that made it.

    The caller decides whether that key is one it knows. Raises BadSignature with the reason.
    """
    p = parse(blob)
    if p.namespace != namespace:
        raise BadSignature(f"signature is for namespace {p.namespace!r}, not {namespace!r}")
    if p.hash_alg not in ("sha256", "sha512"):
        raise BadSignature(f"unsupported hash {p.hash_alg!r}")
    if p.key.type not in KEY_TYPES:
        raise BadSignature(f"unsupported key type {p.key.type!r}")
    data = signed_data(namespace, message, p.hash_alg)
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

    try:
        key = serialization.load_ssh_public_key(p.key.openssh.encode())
    except (ValueError, TypeError) as e:
        raise BadSignature("malformed public key in signature") from e
    try:
        if isinstance(key, ed25519.Ed25519PublicKey) and p.sig_alg == "ssh-ed25519":
            key.verify(p.sig, data)
        elif isinstance(key, ec.EllipticCurvePublicKey) and p.sig_alg == p.key.type:
            r = _Reader(p.sig)
            rs = int.from_bytes(r.string(), "big"), int.from_bytes(r.string(), "big")
            curve = p.key.type.rsplit("-", 1)[1]
            algo = ec.ECDSA(getattr(hashes, _EC_HASH[curve])())
            key.verify(utils.encode_dss_signature(*rs), data, algo)
        elif isinstance(key, rsa.RSAPublicKey) and p.sig_alg in ("rsa-sha2-256", "rsa-sha2-512"):
            algorithm: hashes.HashAlgorithm = (
                hashes.SHA512() if p.sig_alg == "rsa-sha2-512" else hashes.SHA256()
            )
            key.verify(p.sig, data, padding.PKCS1v15(), algorithm)
        else:
            raise BadSignature(f"signature algorithm {p.sig_alg!r} does not fit the key")
    except InvalidSignature as e:
        raise BadSignature("signature does not match the request") from e
    return p.key


# ---------------------------------------------------------------- signing

Signer = Callable[[bytes], bytes]  # message -> SSHSIG blob, for a namespace fixed in the signer


class AgentError(Exception):
    pass


def _agent_call(sock_path: str, msg_type: int, payload: bytes) -> tuple[int, bytes]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(sock_path)
        body = bytes([msg_type]) + payload
        s.sendall(struct.pack(">I", len(body)) + body)
        head = _recv(s, 4)
        (n,) = struct.unpack(">I", head)
        if n > 256 * 1024:
            raise AgentError("ssh-agent sent an oversized reply")
        reply = _recv(s, n)
    return reply[0], reply[1:]


def _recv(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise AgentError("ssh-agent closed the connection")
        buf += chunk
    return buf


def agent_socket() -> str:
    path = os.environ.get("SSH_AUTH_SOCK")
    if not path:
        raise AgentError("no ssh-agent: SSH_AUTH_SOCK is not set")
    return path


def agent_keys(sock_path: str | None = None) -> list[tuple[PublicKey, str]]:
    """The agent's keys of a supported type, with their comments."""
    kind, payload = _agent_call(sock_path or agent_socket(), 11, b"")  # REQUEST_IDENTITIES
    if kind != 12:
        raise AgentError("ssh-agent refused to list its keys")
    r = _Reader(payload)
    out = []
    for _ in range(r.uint32()):
        blob, comment = r.string(), r.string().decode(errors="replace")
        key_type = _Reader(blob).string().decode(errors="replace")
        if key_type in KEY_TYPES:
            out.append((PublicKey(key_type, blob), comment))
    return out


def agent_signer(namespace: str, key: PublicKey, sock_path: str | None = None) -> Signer:
    """Sign through the running ssh-agent with one of its keys (the private key never leaves it)."""
    path = sock_path or agent_socket()
    flags = 4 if key.type == "ssh-rsa" else 0  # SSH_AGENT_RSA_SHA2_512

    def sign(message: bytes) -> bytes:
        data = signed_data(namespace, message)
        kind, payload = _agent_call(
            path, 13, _string(key.blob) + _string(data) + (struct.pack(">I", flags))
        )
        if kind != 14:
            raise AgentError(f"ssh-agent refused to sign with {key.fingerprint}")
        return envelope(key.blob, namespace, _Reader(payload).string())

    return sign


def keygen_signer(namespace: str, key_file: str) -> Signer:
    """Sign with `ssh-keygen -Y sign -f KEY` (a key file, or its .pub with the key in the agent)."""

    def sign(message: bytes) -> bytes:
        try:
            done = subprocess.run(
                ["ssh-keygen", "-q", "-Y", "sign", "-f", key_file, "-n", namespace],
                input=message,
                capture_output=True,
                check=False,
            )
        except FileNotFoundError as e:
            raise AgentError("ssh-keygen is not installed") from e
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip().splitlines()
            raise AgentError(f"ssh-keygen could not sign: {reason[-1] if reason else key_file}")
        return unarmor(done.stdout.decode())

    return sign


def key_file_signer(namespace: str, key_file: str) -> tuple[PublicKey, Signer]:
    """Sign in-process with an unencrypted OpenSSH private key file (needs `cryptography`)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

    with open(key_file, "rb") as f:
        private = serialization.load_ssh_private_key(f.read(), password=None)
    pub_line = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    pub = parse_public_key(pub_line.decode())

    def sign(message: bytes) -> bytes:
        data = signed_data(namespace, message)
        if isinstance(private, ed25519.Ed25519PrivateKey):
            sig = _string(b"ssh-ed25519") + _string(private.sign(data))
        elif isinstance(private, ec.EllipticCurvePrivateKey):
            curve = pub.type.rsplit("-", 1)[1]
            der = private.sign(data, ec.ECDSA(getattr(hashes, _EC_HASH[curve])()))
            r, s = utils.decode_dss_signature(der)
            inner = _string(_mpint(r)) + _string(_mpint(s))
            sig = _string(pub.type.encode()) + _string(inner)
        elif isinstance(private, rsa.RSAPrivateKey):
            raw = private.sign(data, padding.PKCS1v15(), hashes.SHA512())
            sig = _string(b"rsa-sha2-512") + _string(raw)
        else:
            raise Invalid(f"unsupported key type in {key_file}")
        return envelope(pub.blob, namespace, sig)

    return pub, sign


def _mpint(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 8) // 8, "big")  # room for the sign bit: minimal, positive
