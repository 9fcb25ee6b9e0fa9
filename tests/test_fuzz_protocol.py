"""Property-based fuzzing of roard's socket protocol (hypothesis): every request Struct, with
values inside and outside their constraints, and raw frames of random bytes. roard must answer
each with a reply or an error, keep the connection when the frame was readable, and stay up.

Requests are generated from the protocol's own type information (msgspec.inspect), so a new
message or field is fuzzed without touching this file. Directories are kept to the test's own
tree (a fuzzed Init or RunFinish must not write or hash files elsewhere on the machine)."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
from conftest import Roar
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roar import protocol as p

# Requests that end the conversation or the daemon, or act on real files, are not fuzzed here:
# Shutdown stops roard, Hello is the sentinel below, Pop may delete outputs (covered by its
# own tests).
SKIPPED = {"Shutdown", "Hello", "Pop"}


@pytest.fixture(scope="module")
def daemon() -> Iterator[Roar]:
    base = Path(tempfile.mkdtemp(prefix="roar-fuzz-", dir="/tmp"))
    roar = Roar(base, None)
    roar("daemon", "start")
    try:
        yield roar
    finally:
        roar.stop()
        if not os.environ.get("ROAR_FUZZ_KEEP"):
            shutil.rmtree(base, ignore_errors=True)


class Conn:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(30)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rb")
        self.send_body(p.frame(p.Hello(protocol=p.PROTOCOL_VERSION, client="fuzz"))[4:])
        assert isinstance(self.recv(), p.Welcome)

    def send_body(self, body: bytes) -> None:
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def recv(self) -> p.Reply | None:
        head = self.file.read(4)
        if len(head) < 4:
            return None
        return p.decode_reply(self.file.read(struct.unpack(">I", head)[0]))

    def exchange(self, body: bytes) -> list[p.Reply]:
        """Send one request body, then a Hello as a sentinel (answered 'already greeted'): the
        replies before the sentinel's are the request's."""
        self.send_body(body)
        self.send_body(p.frame(p.Hello(protocol=1, client="sentinel"))[4:])
        replies = []
        while True:
            reply = self.recv()
            assert reply is not None, "roard closed a connection after a readable frame"
            if isinstance(reply, p.Error) and reply.message == "already greeted":
                return replies
            replies.append(reply)

    def close(self) -> None:
        self.sock.close()


# ---------------------------------------------------------------- strategies from the types


def _for(t: mi.Type, name: str, dirs: list[bytes]) -> st.SearchStrategy[Any]:
    """Values of type `t`: mostly within its constraints, sometimes outside them."""
    if name in ("cwd",):
        return st.sampled_from(dirs)
    if name == "path" and isinstance(t, mi.BytesType):
        return st.builds(
            lambda d, tail: d + b"/" + tail, st.sampled_from(dirs), st.binary(max_size=12)
        )
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.IntType):
        inside = st.integers(
            min_value=t.ge if t.ge is not None else -(2**63),
            max_value=t.le if t.le is not None else 2**63 - 1,
        )
        return st.one_of(
            inside, inside, inside, st.integers(min_value=-(2**63), max_value=2**64 - 1)
        )
    if isinstance(t, mi.FloatType):
        valid = st.floats(min_value=0, max_value=2e9)
        return st.one_of(valid, valid, valid, st.floats(allow_nan=True, allow_infinity=True))
    if isinstance(t, mi.StrType):
        return st.one_of(
            st.text(max_size=20),
            st.from_regex(r"[0-9a-f]{12}", fullmatch=True),
            st.sampled_from(["@1", "@B1", "", "abc\x00d"]),
        )
    if isinstance(t, mi.BytesType):
        return st.binary(max_size=24)
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.LiteralType):
        known = st.sampled_from(list(t.values))
        return st.one_of(known, known, known, st.text(max_size=8))
    if isinstance(t, mi.ListType):
        return st.lists(_for(t.item_type, name, dirs), max_size=4)
    if isinstance(t, mi.DictType):
        return st.dictionaries(
            _for(t.key_type, name, dirs), _for(t.value_type, name, dirs), max_size=3
        )
    if isinstance(t, mi.UnionType):
        return st.one_of([_for(x, name, dirs) for x in t.types])
    if isinstance(t, mi.StructType):
        return _struct(t, dirs)
    raise AssertionError(f"no strategy for {t!r}")


def _struct(t: mi.StructType, dirs: list[bytes]) -> st.SearchStrategy[Any]:
    """A struct as the raw object msgpack would carry (dict, or list when array_like), so
    that values msgspec would refuse can be sent too."""
    fields = {f.encode_name: _for(f.type, f.name, dirs) for f in t.fields}
    required = {f.encode_name for f in t.fields if f.required}

    def build(values: dict[str, Any], drop: list[bool]) -> Any:
        kept = {
            k: v for (k, v), d in zip(values.items(), drop, strict=True) if k in required or not d
        }
        if t.array_like:
            return [values[f.encode_name] for f in t.fields]
        if t.tag is not None:
            kept = {t.tag_field: t.tag, **kept}
        return kept

    return st.builds(
        build,
        st.fixed_dictionaries(fields),
        st.lists(st.booleans(), min_size=len(fields), max_size=len(fields)),
    )


def _requests(dirs: list[bytes]) -> st.SearchStrategy[bytes]:
    union = mi.type_info(p.Request)
    assert isinstance(union, mi.UnionType)
    structs = [t for t in union.types if isinstance(t, mi.StructType) and t.tag not in SKIPPED]
    return st.one_of([_struct(t, dirs) for t in structs]).map(msgspec.msgpack.encode)


def _dirs(roar: Roar) -> list[bytes]:
    work = os.fsencode(roar.work)
    odd = [work + b"/no/such/dir", work + b"/\xff\xfe", b"", b"relative/dir"]
    return [work] * 6 + odd


# ---------------------------------------------------------------- the properties


def _log_errors(roar: Roar) -> str:
    log = roar.home / ".local/state/roar/roard.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return "\n".join(x for x in lines if '"error"' in x)[-4000:]


FUZZ = settings(
    max_examples=int(os.environ.get("ROAR_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    # the same examples every run (a failure in CI is a failure here); random for longer hunts
    derandomize=not os.environ.get("ROAR_FUZZ_RANDOM"),
)


def test_every_request_gets_a_reply_or_an_error_and_roard_stays_up(daemon: Roar) -> None:
    conn = Conn(daemon.socket)
    seen: dict[str, int] = {}

    @FUZZ
    @given(body=_requests(_dirs(daemon)))
    def one(body: bytes) -> None:
        kind = msgspec.msgpack.decode(body)
        kind = kind.get("type") if isinstance(kind, dict) else None
        replies = conn.exchange(body)
        final = [r for r in replies if not isinstance(r, p.Progress)]
        if kind == "RunFiles":  # accepted silently, or refused with an error
            assert len(final) <= 1 and all(isinstance(r, p.Error) for r in final), replies
        else:
            assert len(final) == 1, (kind, replies)
        for r in final:
            if isinstance(r, p.Error):
                assert r.code in ("invalid", "not-found", "ambiguous", "bad-frame"), (
                    kind,
                    r,
                    _log_errors(daemon),
                )
                seen[r.code] = seen.get(r.code, 0) + 1
            else:
                seen["reply"] = seen.get("reply", 0) + 1

    try:
        one()
    finally:
        conn.close()
    assert seen.get("reply", 0) > 20 and seen.get("invalid", 0) > 20, seen  # both kinds tried
    assert daemon.json("daemon", "status")["running"]
    assert daemon("status").returncode == 0


def test_raw_frames_get_an_error_and_roard_stays_up(daemon: Roar) -> None:
    conn = Conn(daemon.socket)

    @FUZZ
    @given(body=st.binary(max_size=64))
    def one(body: bytes) -> None:
        nonlocal conn
        replies = conn.exchange(body)
        if len(replies) == 1 and not isinstance(replies[0], p.Error):
            # random bytes that happen to be a valid request (b"\x81\xa4type\xa4Ping"...)
            return
        assert len(replies) == 1 and isinstance(replies[0], p.Error), replies

    try:
        one()
    finally:
        conn.close()
    # Oversized and truncated frames: the connection goes, the daemon stays.
    for header in (struct.pack(">I", p.MAX_FRAME + 1), struct.pack(">I", 2**32 - 1), b"\x00\x00"):
        c = Conn(daemon.socket)
        c.sock.sendall(header)
        if len(header) == 4:
            reply = c.recv()
            assert isinstance(reply, p.Error) and reply.code == "bad-frame"
        c.close()
    assert daemon.json("daemon", "status")["running"]
    assert daemon("status").returncode == 0
