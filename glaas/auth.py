"""Who signed a request. Unsigned requests read as anonymous (public records only); a signed one
must verify, be fresh (within SKEW seconds), come from a registered key and be new (each signed
message is accepted once, however its signature is wrapped). Otherwise 401, with the reason."""

from __future__ import annotations

import dataclasses
import hashlib
import time

from glaas.store import Account, Store
from roar.errors import Unauthorized
from roar.registry import NAMESPACE, SKEW, parse_authorization, request_message
from roar.sshsig import BadSignature, verify


async def authenticate(
    store: Store,
    method: str,
    path: str,
    query: str,
    header: str | None,
    body: bytes,
    now: float | None = None,
) -> Account | None:
    if header is None:
        return None
    parsed = parse_authorization(header)
    if parsed is None:
        raise Unauthorized(
            "malformed Authorization header",
            "expected: SSHSIG t=<unix time>,n=<hex nonce>,s=<base64 SSHSIG blob>",
        )
    timestamp, nonce, blob = parsed
    now = time.time() if now is None else now
    if abs(now - timestamp) > SKEW:
        raise Unauthorized(
            f"signature expired: signed {now - timestamp:+.0f} s from the server's clock "
            f"(±{SKEW} s allowed)",
            "check the clock, and sign each request when it is sent",
        )
    message = request_message(method, path, query, timestamp, nonce, body)
    try:
        key = verify(blob, message, NAMESPACE)
    except BadSignature as e:
        raise Unauthorized(f"bad signature: {e}") from e
    account = await store.account(key.fingerprint)
    if account is None:
        raise Unauthorized(
            f"unknown key {key.fingerprint}", "ask the registry's admin: glaas admin user add"
        )
    # what counts once is the signed message, by this key, not the blob: the same signature
    # wrapped in another SSHSIG envelope (its unsigned `reserved` field, an ECDSA signature's
    # other valid form) is the same request
    digest = hashlib.sha256(key.fingerprint.encode() + b"\n" + message).hexdigest()
    if not await store.remember_signature(digest, timestamp + SKEW + 1, now):
        raise Unauthorized("replayed signature: this request was already accepted once")
    return dataclasses.replace(account, key=key.fingerprint)


def required(account: Account | None) -> Account:
    if account is None:
        raise Unauthorized(
            "this request must be signed", "sign it with your SSH key (roarctl auth)"
        )
    return account
