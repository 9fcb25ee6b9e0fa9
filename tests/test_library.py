"""roarctl as a library: a Client whose `call` says clearly when roard answers something other
than what was asked for."""

from __future__ import annotations

import sys

from conftest import Roar

UNEXPECTED = """
from roar.protocol import Ping, StatusReply
from roarctl.client import Client
from roarctl.errors import RoarError

with Client.connect() as c:
    try:
        c.call(Ping(), expect=StatusReply)
    except RoarError as exc:
        print(exc.message)
        print(exc.hint)
"""


def test_a_reply_of_the_wrong_type_is_a_clear_error_even_under_python_O(roar: Roar) -> None:
    proc = roar.exec([sys.executable, "-O", "-c", UNEXPECTED])
    message, hint = proc.stdout.splitlines()
    assert message == "roard answered Ping with Ok, not StatusReply"
    assert "versions may differ" in hint
