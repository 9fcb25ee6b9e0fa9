"""Schemathesis, in-process, on both backends: requests generated from the OpenAPI schema the
server publishes, unsigned and signed (a test-only ASGI wrapper signs each request as alice, so
ingest's body is fuzzed too), never get a 5xx, and every response matches the schema: its status
is documented, its content type too, and its body has the documented shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from registry_support import (
    Client,
    Database,
    Key,
    batch,
    drop_database,
    glaas_admin,
    hexdigest,
    make_database,
    make_job,
    new_session,
    set_up_accounts,
)
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from roar import registry

pytest_plugins = ["registry_support"]  # the fixtures

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class SignAsAlice:
    """Test-only ASGI wrapper: signs every HTTP request that is not signed already."""

    def __init__(self, app: Any, key: Key) -> None:
        self.app = app
        self.key = key

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or any(k == b"authorization" for k, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        raw_path = scope.get("raw_path") or scope["path"].encode()
        header = registry.authorization(
            self.key.sign,
            scope["method"],
            raw_path.decode("latin-1").split("?", 1)[0],
            scope.get("query_string", b"").decode("latin-1"),
            body,
        )
        scope = {**scope, "headers": [*scope["headers"], (b"authorization", header.encode())]}
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _seed(db: Database, keys: dict[str, Key]) -> None:
    """Records whose hashes start with zeros, where generated refs land (hypothesis starts its
    examples from "000000"): full matches, ambiguous prefixes, lineage and a session."""
    from litestar.testing import TestClient

    from glaas.app import create_app

    a, b, c = ("000000" + hexdigest()[6:] for _ in range(3))
    session = new_session()
    one = make_job(inputs=[("a", a)], outputs=[("b", b)])
    two = make_job(inputs=[("b", b)], outputs=[("c", c)])
    with TestClient(create_app(db.url)) as http:
        assert Client(http, keys).ingest(batch(one, two, session=session)).status_code == 200


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzzed_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Key]
) -> Iterator[Database]:
    db = make_database(request.param, tmp_path_factory.mktemp("fuzz"))
    try:
        set_up_accounts(db, keys)
        glaas_admin(db, "visibility", "public")
        _seed(db, keys)
        yield db
    finally:
        drop_database(db)


@pytest.fixture(scope="module", params=["unsigned", "signed"])
def api_schema(request: pytest.FixtureRequest, fuzzed_db: Database, keys: dict[str, Key]) -> Any:
    from glaas.app import create_app

    app: Any = create_app(fuzzed_db.url, pool_size=4)
    if request.param == "signed":
        app = SignAsAlice(app, keys["alice"])
    return schemathesis.openapi.from_asgi(f"{registry.API}/openapi.json", app)


def test_the_api_keeps_to_its_schema(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 9
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            case.call_and_validate(checks=CHECKS)

        run()
