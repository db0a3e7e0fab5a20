"""The bad-input battery (SPEC §4, issue 10): every kind of bad input the probe sent, and
GraphQL documents generated from the schema, against the real app on PostgreSQL with
the production-like settings (webhook URLs must be public https). For every input:

- no 5xx, and no GraphQL error coded INTERNAL_SERVER_ERROR;
- nothing changed in the database (a digest of every table, taken before and after);
- no secret in the answer (body and headers) or in any log line.

Each test tallies what it sent; the module prints the figures at its end (`-s` shows
them; docs/operations.md quotes them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import hypothesis_graphql
import jwt
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import text
from starlette.testclient import TestClient

from harness.tenant import CLIENT_PAGE, Tenant
from providers.fakes.serve import FakeServer
from settings import Settings
from store.db import Database
from store.models import Base
from tests.helpers.api import create_vehicle
from tests.helpers.store import add_vehicle
from tests.helpers.webhooks import SECRET as PROVIDER_WEBHOOK_SECRET
from tests.helpers.webhooks import hook, sign
from workflows.webhook_endpoints import create_endpoint

pytestmark = pytest.mark.usefixtures("worker")

OPS_TOKEN = "battery-ops-token"
ACCESS_TOKEN = "battery-access-token-7f3a"
REFRESH_TOKEN = "battery-refresh-token-91c2"
PROVIDER_APP_SECRET = "battery-provider-app-secret"


@dataclass
class Tally:
    """What the battery sent and what went wrong, over the whole module."""

    tried: int = 0
    server_errors: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"bad-input battery: {self.tried} inputs tried, {len(self.server_errors)} "
            f"answered 5xx, {len(self.changes)} changed the database, {len(self.leaks)} "
            "leaked a secret"
        )


TALLY = Tally()


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[None]:
    yield
    print(f"\n{TALLY.line()}")


# The workers' heartbeats change every few seconds whatever the input: not the data.
# Not the service's data: worker liveness; and the operators' audit, where a refused
# re-drive is recorded on purpose (tests/api/test_ops.py checks what it holds).
NOT_DATA = {"worker_heartbeats", "operator_actions"}


def digest(db: Database) -> dict[str, str]:
    """Every table's rows, hashed (PostgreSQL renders each row as text)."""
    out: dict[str, str] = {}
    with db.engine.connect() as conn:
        for name in set(Base.metadata.tables) - NOT_DATA:
            rows = conn.execute(text(f'SELECT t::text FROM "{name}" t ORDER BY 1')).scalars()
            out[name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return out


def settled(db: Database, quiet: float = 0.6, timeout: float = 20.0) -> dict[str, str]:
    """The digest once the worker has finished what the set-up started."""
    deadline = time.monotonic() + timeout
    before = digest(db)
    while True:
        time.sleep(quiet)
        now = digest(db)
        if now == before:
            return now
        if time.monotonic() > deadline:
            raise AssertionError("the database did not settle")
        before = now


@dataclass
class World:
    """The app under test and what it must never give away."""

    api: TestClient
    tenant: Tenant
    db: Database
    secrets: list[str]
    headers: dict[str, str]
    admin: dict[str, str]
    pending_id: str
    authorized_id: str
    caplog: pytest.LogCaptureFixture
    # The pending vehicle's authorization URL carries its OAuth state by design: its
    # owner sends the user there. Anywhere else (another field, an error, a log line)
    # the state is a leak.
    authorization_url: str

    def probe(
        self, name: str, send: Callable[[TestClient], Any], *, before: dict[str, str]
    ) -> dict[str, str]:
        """Send one input; tally it; return the digest to compare the next one with."""
        TALLY.tried += 1
        records = len(self.caplog.records)
        answer = send(self.api)
        status = answer.status_code
        body = answer.text
        if status >= 500 or "INTERNAL_SERVER_ERROR" in body:
            TALLY.server_errors.append(f"{name}: {status} {body[:200]}")
        after = digest(self.db)
        if after != before:
            changed = sorted(t for t in after if after[t] != before[t])
            TALLY.changes.append(f"{name}: {changed}")
        shown = body.replace(self.authorization_url, "<its authorization_url>") + json.dumps(
            dict(answer.headers)
        )
        logged = "\n".join(
            r.getMessage() + (str(r.exc_info[1]) if r.exc_info else "")
            for r in self.caplog.records[records:]
        )
        for secret in self.secrets:
            if secret in shown or secret in logged:
                TALLY.leaks.append(
                    f"{name}: a secret in the {'answer' if secret in shown else 'logs'}"
                )
        return after


@pytest.fixture
def world(
    tenant: Tenant,
    settings: Settings,
    fakes: dict[str, FakeServer],
    caplog: pytest.LogCaptureFixture,
) -> Iterator[World]:
    from api.app import create_app

    caplog.set_level(logging.DEBUG)
    production_like = settings.model_copy(
        update={"webhooks_allow_private": False, "ops_token": SecretStr(OPS_TOKEN)}
    )
    app = create_app(production_like)
    hook(tenant, fakes, webhook_secret=PROVIDER_WEBHOOK_SECRET, app_secret=PROVIDER_APP_SECRET)
    with tenant.db.session() as session:
        endpoint = create_endpoint(
            session,
            tenant.client_id,
            "http://127.0.0.1:9/cv",
            ["connected_vehicle.removed"],  # no delivery during the battery
            allow_private=True,
        )
        endpoint_secret = endpoint.secret
        session.commit()
    try:
        with TestClient(app, follow_redirects=False) as api:
            headers = tenant.headers()
            pending = create_vehicle(api, headers)
            authorized = add_vehicle(
                tenant.db,
                client_id=tenant.client_id,
                user_id="user-1",
                status="authorized",
                access_token=ACCESS_TOKEN,
                refresh_token=REFRESH_TOKEN,
                vin="5YJ3E1EA7KF000001",
            )
            state = pending["authorization_url"].split("state=")[1].split("&")[0]
            yield World(
                api=api,
                tenant=tenant,
                db=tenant.db,
                secrets=[
                    tenant.signing_secret,
                    endpoint_secret,
                    ACCESS_TOKEN,
                    REFRESH_TOKEN,
                    PROVIDER_APP_SECRET,
                    PROVIDER_WEBHOOK_SECRET,
                    OPS_TOKEN,
                    state,
                    settings.secret_key.get_secret_value().split(",")[0],
                ],
                headers=headers,
                admin=tenant.headers("admin-1", admin=True),
                pending_id=pending["id"],
                authorized_id=authorized,
                caplog=caplog,
                authorization_url=pending["authorization_url"],
            )
    finally:
        app.state.db.engine.dispose()


def run(world: World, cases: list[tuple[str, Callable[[TestClient], Any]]]) -> None:
    before = settled(world.db)
    errors, changes, leaks = (len(TALLY.server_errors), len(TALLY.changes), len(TALLY.leaks))
    for name, send in cases:
        before = world.probe(name, send, before=before)
    assert TALLY.server_errors[errors:] == []
    assert TALLY.changes[changes:] == []
    assert TALLY.leaks[leaks:] == []


# -- the cases ---------------------------------------------------------------------------------

CREATE = """mutation($input: CreateConnectedVehicleInput!) {
  createConnectedVehicle(input: $input) { id status } }"""
UPDATE = """mutation($input: UpdateConnectedVehicleInput!) {
  updateConnectedVehicle(input: $input) { id label } }"""
GET = "query($id: ID!) { connectedVehicle(id: $id) { id status } }"
LIST = """query($after: String, $size: Int, $page: Int) {
  connectedVehicleList(after: $after, size: $size, page: $page) { id } }"""
CREATE_HOOK = """mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { id } }"""


def post_graphql(
    headers: dict[str, str], *, content: bytes | None = None, **body: Any
) -> Callable[[TestClient], Any]:
    def send(api: TestClient) -> Any:
        if content is not None:
            return api.post(
                "/graphql",
                content=content,
                headers={**headers, "content-type": "application/json"},
            )
        return api.post("/graphql", json=body, headers=headers)

    return send


def document(headers: dict[str, str], query: str, **variables: Any) -> Callable[[TestClient], Any]:
    return post_graphql(headers, query=query, variables=variables)


def test_bodies_that_are_no_graphql_request(world: World) -> None:
    h = world.headers
    cases: list[tuple[str, Callable[[TestClient], Any]]] = [
        (name, post_graphql(h, content=raw))
        for name, raw in [
            ("null", b"null"),
            ("a string", b'"query"'),
            ("a number", b"42"),
            ("a boolean", b"true"),
            ("an empty list", b"[]"),
            ("an empty object", b"{}"),
            ("not JSON", b"{query"),
            ("invalid UTF-8", b'{"query": "\xff\xfe"}'),
            ("deep JSON", b"[" * 5000 + b"]" * 5000),
            ("deep object", b'{"a":' * 3000 + b"1" + b"}" * 3000),
            ("query null", b'{"query": null}'),
            ("query a number", b'{"query": 5}'),
            ("variables a string", b'{"query": "{ vehicleList { id } }", "variables": "x"}'),
            ("variables a list", b'{"query": "{ vehicleList { id } }", "variables": [1]}'),
            ("operationName a number", b'{"query": "{ vehicleList { id } }", "operationName": 1}'),
            ("a body over the cap", b'{"query": "' + b"x" * 70_000 + b'"}'),
            ("a 1.1 MB body", b'{"query": "{' + b" " * 1_100_000 + b'}"}'),
        ]
    ]
    cases += [
        (
            "text/plain",
            lambda api: api.post(
                "/graphql",
                content=b"{ vehicleList { id } }",
                headers={**h, "content-type": "text/plain"},
            ),
        ),
        (
            "form-encoded",
            lambda api: api.post("/graphql", data={"query": "{ vehicleList { id } }"}, headers=h),
        ),
        (
            "PUT",
            lambda api: api.put("/graphql", json={"query": "{ vehicleList { id } }"}, headers=h),
        ),
        (
            "a mutation over GET",
            lambda api: api.get(
                "/graphql",
                params={"query": 'mutation { removeConnectedVehicle(input: {id: "x"}) { id } }'},
                headers=h,
            ),
        ),
        (
            "GET without a query",
            lambda api: api.get("/graphql", headers={**h, "accept": "application/json"}),
        ),
    ]
    run(world, cases)


def test_documents_over_a_limit_or_malformed(world: World) -> None:
    h = world.headers
    deep = "{ connectedVehicleList " + "{ failure " * 40 + "{ code }" + " }" * 40 + " }"
    cases = [
        ("syntax", document(h, "{ connectedVehicleList { id ")),
        ("unknown field", document(h, "{ connectedVehicleList { nope } }")),
        (
            "1,000 aliases",
            document(h, "{ " + " ".join(f"a{i}: vehicleList {{ id }}" for i in range(1000)) + " }"),
        ),
        ("2,100 tokens", document(h, "{ vehicleList { " + "id " * 2100 + "} }")),
        ("deep document", document(h, deep)),
        (
            "fragment cycle",
            document(h, "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }"),
        ),
        (
            "two operations, no name",
            document(h, "query A { vehicleList { id } } query B { vehicleList { id } }"),
        ),
        (
            "unknown operationName",
            post_graphql(h, query="query A { vehicleList { id } }", operationName="B"),
        ),
        ("subscription over HTTP", document(h, SUBSCRIPTION_DOC, id=world.pending_id)),
        (
            "int over 32 bits",
            document(h, "{ connectedVehicleList(size: 99999999999999999999) { id } }"),
        ),
        (
            # the owner's own authorization URL carries the state by design: no leak
            "the owner's list with its authorization URLs",
            document(h, "{ connectedVehicleList(size: 20) { id status authorization_url } }"),
        ),
        ("negative size", document(h, LIST, size=-1)),
        ("size 0", document(h, LIST, size=0)),
        ("page 0", document(h, LIST, page=0)),
        ("a huge page", document(h, LIST, page=2**31 - 1)),
        ("a garbage cursor", document(h, LIST, after="not-a-cursor")),
        ("a cursor with NUL", document(h, LIST, after="a\x00b")),
        ("a 10 kB cursor", document(h, LIST, after="A" * 10_000)),
        ("an id with NUL", document(h, GET, id="a\x00b")),
        ("a 10 kB id", document(h, GET, id="x" * 10_000)),
        ("an emoji id", document(h, GET, id="🚗")),
        ("a number as id variable", document(h, GET, id=[1, 2])),
        ("a variable of the wrong type", document(h, LIST, size="ten")),
        (
            "an unknown enum",
            document(h, CREATE, input={"vehicle_id": "tesla-model-3", "provider": "Ford"}),
        ),
        (
            "an unknown scope",
            document(
                h,
                CREATE,
                input={
                    "vehicle_id": "tesla-model-3",
                    "provider": "Smartcar",
                    "options": {"scope": ["everything"]},
                },
            ),
        ),
        (
            "vehicle_id with NUL",
            document(h, CREATE, input={"vehicle_id": "tesla\x00", "provider": "Smartcar"}),
        ),
        (
            "a 10 kB vehicle_id",
            document(h, CREATE, input={"vehicle_id": "t" * 10_000, "provider": "Smartcar"}),
        ),
        (
            "label 201 characters",
            document(
                h,
                CREATE,
                input={
                    "vehicle_id": "tesla-model-3",
                    "provider": "Smartcar",
                    "label": "l" * 201,
                    "options": {"redirect_uri": CLIENT_PAGE},
                },
            ),
        ),
        (
            "label with NUL",
            document(
                h,
                CREATE,
                input={
                    "vehicle_id": "tesla-model-3",
                    "provider": "Smartcar",
                    "label": "a\x00b",
                    "options": {"redirect_uri": CLIENT_PAGE},
                },
            ),
        ),
        (
            "label with control characters",
            document(h, UPDATE, input={"id": world.pending_id, "label": "a\x07\x1bb"}),
        ),
        (
            "redirect_uri javascript:",
            document(
                h,
                CREATE,
                input={
                    "vehicle_id": "tesla-model-3",
                    "provider": "Smartcar",
                    "options": {"redirect_uri": "javascript:alert(1)"},
                },
            ),
        ),
        (
            "redirect_uri not registered",
            document(
                h,
                CREATE,
                input={
                    "vehicle_id": "tesla-model-3",
                    "provider": "Smartcar",
                    "options": {"redirect_uri": "https://evil.example/"},
                },
            ),
        ),
        (
            "redirect_uri 2,000 characters",
            document(
                h,
                CREATE,
                input={
                    "vehicle_id": "tesla-model-3",
                    "provider": "Smartcar",
                    "options": {"redirect_uri": CLIENT_PAGE + "?" + "a" * 2000},
                },
            ),
        ),
        (
            "redirect_uri with NUL",
            document(
                h,
                CREATE,
                input={
                    "vehicle_id": "tesla-model-3",
                    "provider": "Smartcar",
                    "options": {"redirect_uri": CLIENT_PAGE + "\x00"},
                },
            ),
        ),
        (
            "update someone else's",
            document(
                world.tenant.headers("user-2"),
                UPDATE,
                input={"id": world.pending_id, "label": "mine"},
            ),
        ),
        (
            "authorize with a forged code",
            document(
                h,
                "mutation($input: AuthorizeConnectedVehicleInput!) {"
                " authorizeConnectedVehicle(input: $input) { id } }",
                input={"id": world.authorized_id, "options": {"code": "forged"}},
            ),
        ),
        (
            "data of a pending vehicle",
            document(
                h, "query($id: ID!) { connectedVehicleData(id: $id) { vin } }", id=world.pending_id
            ),
        ),
        (
            "webhook endpoint as a user",
            document(h, CREATE_HOOK, input={"url": "https://hooks.example/x"}),
        ),
    ]
    run(world, cases)


SUBSCRIPTION_DOC = "subscription($id: ID!) { connectedVehicle(id: $id) { id } }"

SSRF = [
    "http://169.254.169.254/latest/meta-data/",
    "https://169.254.169.254/",
    "https://localhost:6392/",
    "https://[::1]/",
    "https://0x7f000001/",
    "https://127.1/",
    "https://10.0.0.1/",
    "https://[fd00::1]/",
    "http://hooks.example/",
    "file:///etc/passwd",
    "https://user:pass@127.0.0.1/",
    "https://" + "a" * 300 + ".example/",
    "https://hooks.example/\x00",
    "not a url",
    # malformed: a bad port or bad brackets (urllib's ValueError was an internal error)
    "https://a.example:99999/x",
    "https://a.example:abc/x",
    "https://a.example:-1/x",
    "https://[::1/x",
    "https://[zz]/x",
]


def test_webhook_endpoints_that_point_inside(world: World) -> None:
    cases = [
        (f"endpoint {url[:40]!r}", document(world.admin, CREATE_HOOK, input={"url": url}))
        for url in SSRF
    ]
    cases.append(
        (
            "an unknown event type",
            document(
                world.admin,
                CREATE_HOOK,
                input={"url": "https://hooks.example/y", "event_types": ["connected_vehicle.nope"]},
            ),
        )
    )
    cases.append(
        (
            "delete an unknown endpoint",
            document(world.admin, 'mutation { deleteWebhookEndpoint(input: {id: "nope"}) }'),
        )
    )
    run(world, cases)


def test_callers_that_are_not_who_they_say(world: World) -> None:
    client = world.tenant.client_id
    secret = world.tenant.signing_secret
    now = datetime.now(UTC)
    hour = now + timedelta(hours=1)

    def token(claims: dict[str, Any], key: str = secret) -> str:
        return jwt.encode({"sub": "user-1", "iat": now, **claims}, key, algorithm="HS256")

    def as_(headers: dict[str, Any]) -> Callable[[TestClient], Any]:
        return lambda api: api.post(
            "/graphql", json={"query": "{ connectedVehicleList { id } }"}, headers=headers
        )

    def bearer(value: str | bytes) -> Callable[[TestClient], Any]:
        return as_({"x-client-id": client, "authorization": value})

    unsigned = jwt.encode({"sub": "u", "exp": hour}, "", algorithm="none")
    admin_as_text = {
        "x-client-id": client,
        "authorization": f"Bearer {token({'exp': hour, 'admin': 'yes'})}",
    }
    cases = [
        ("no headers", as_({})),
        ("no token", as_({"x-client-id": client})),
        (
            "an unknown client",
            as_({"x-client-id": "nobody", "authorization": f"Bearer {token({'exp': hour})}"}),
        ),
        ("a client id with NUL", as_({"x-client-id": "a\x00b", "authorization": "Bearer x"})),
        ("a non-ASCII client id", as_({"x-client-id": "é".encode(), "authorization": "Bearer x"})),
        ("an 8 kB client id", as_({"x-client-id": "c" * 8000, "authorization": "Bearer x"})),
        ("a garbage token", bearer("Bearer garbage")),
        ("an empty bearer", bearer("Bearer ")),
        ("basic auth", bearer("Basic dXNlcjpwYXNz")),
        ("signed with another key", bearer(f"Bearer {token({'exp': hour}, key='k' * 32)}")),
        ("expired", bearer(f"Bearer {token({'exp': now - timedelta(minutes=5)})}")),
        (
            "exp in the year 9999",
            bearer(f"Bearer {token({'exp': datetime(9999, 1, 1, tzinfo=UTC)})}"),
        ),
        ("no exp", bearer(f"Bearer {token({})}")),
        ("no sub", bearer(f"Bearer {jwt.encode({'exp': hour}, secret, algorithm='HS256')}")),
        ("alg none", bearer(f"Bearer {unsigned}")),
        ("a non-ASCII token", bearer("Bearer é".encode())),
        ("a 30 kB token", bearer("Bearer " + "t" * 30_000)),
        (
            "admin claim a string",
            document(admin_as_text, CREATE_HOOK, input={"url": "https://hooks.example/z"}),
        ),
    ]
    run(world, cases)


def test_the_callback_ops_and_provider_webhooks(world: World) -> None:
    ops = {"authorization": f"Bearer {OPS_TOKEN}"}
    deep = b"[" * 5000 + b"]" * 5000

    def signed(provider: str, raw: bytes) -> Callable[[TestClient], Any]:
        return lambda api: api.post(
            f"/webhooks/{provider}", content=raw, headers=sign(provider, raw)
        )

    cases: list[tuple[str, Callable[[TestClient], Any]]] = [
        ("callback without anything", lambda api: api.get("/oauth/callback")),
        (
            "callback with a forged state",
            lambda api: api.get("/oauth/callback", params={"state": "forged", "code": "c"}),
        ),
        ("callback state with NUL", lambda api: api.get("/oauth/callback?state=a%00b&code=c")),
        (
            "callback with a 10 kB state",
            lambda api: api.get("/oauth/callback", params={"state": "s" * 10_000, "code": "c"}),
        ),
        (
            "callback code without state",
            lambda api: api.get("/oauth/callback", params={"code": "c"}),
        ),
        (
            "callback error with a forged state",
            lambda api: api.get(
                "/oauth/callback", params={"state": "forged", "error": "access_denied"}
            ),
        ),
        (
            "callback with state twice",
            lambda api: api.get("/oauth/callback?state=a&state=b&code=c"),
        ),
        (
            "callback invalid percent-encoding",
            lambda api: api.get("/oauth/callback?state=%ff%fe&code=%"),
        ),
        ("ops without a token", lambda api: api.post(f"/ops/vehicles/{world.pending_id}/redrive")),
        (
            "ops with a wrong token",
            lambda api: api.post(
                f"/ops/vehicles/{world.pending_id}/redrive",
                headers={"authorization": "Bearer wrong"},
            ),
        ),
        ("ops id with NUL", lambda api: api.post("/ops/vehicles/%00/redrive", headers=ops)),
        (
            "ops unknown id",
            lambda api: api.post("/ops/vehicles/no-such-vehicle/redrive", headers=ops),
        ),
        (
            "ops redrive of an authorized vehicle",
            lambda api: api.post(f"/ops/vehicles/{world.authorized_id}/redrive", headers=ops),
        ),
        (
            "ops replay with NUL",
            lambda api: api.post("/ops/webhook-deliveries/%00/replay", headers=ops),
        ),
        (
            "ops replay unknown",
            lambda api: api.post("/ops/webhook-deliveries/nope/replay", headers=ops),
        ),
        (
            "ops bulk re-drive without a reason",
            lambda api: api.post(
                "/ops/redrives", json={"code": "PROVIDER_UNAVAILABLE"}, headers=ops
            ),
        ),
        (
            "ops bulk re-drive of an unknown code",
            lambda api: api.post(
                "/ops/redrives", json={"code": "NOPE", "dry_run": True}, headers=ops
            ),
        ),
        (
            "ops bulk re-drive forced, not confirmed",
            lambda api: api.post(
                "/ops/redrives",
                json={"code": "AUTHORIZATION_DENIED", "reason": "x", "force": True},
                headers=ops,
            ),
        ),
        (
            "ops bulk re-drive, a body that is not JSON",
            lambda api: api.post("/ops/redrives", content=b"\xff{", headers=ops),
        ),
        (
            "ops bulk re-drive with a NUL in the search",
            lambda api: api.post(
                "/ops/redrives", json={"search": "a\x00b", "dry_run": True}, headers=ops
            ),
        ),
        ("ops bulk run unknown", lambda api: api.get("/ops/redrives/nope", headers=ops)),
        (
            "ops bulk stop unknown",
            lambda api: api.post("/ops/redrives/nope/stop", headers=ops),
        ),
        ("an unknown provider's webhook", lambda api: api.post("/webhooks/tesla", content=b"{}")),
        ("an unsigned webhook", lambda api: api.post("/webhooks/smartcar", content=b"{}")),
        (
            "a forged signature",
            lambda api: api.post(
                "/webhooks/smartcar", content=b"{}", headers={"sc-signature": "0" * 64}
            ),
        ),
        (
            "a non-ASCII signature",
            lambda api: api.post(
                "/webhooks/enode", content=b"{}", headers={"x-enode-signature": "sha1=é".encode()}
            ),
        ),
        (
            "a 10 kB signature",
            lambda api: api.post(
                "/webhooks/enode",
                content=b"{}",
                headers={"x-enode-signature": "sha1=" + "a" * 10_000},
            ),
        ),
        ("signed deep JSON", signed("smartcar", deep)),
        ("signed invalid UTF-8", signed("enode", b"\xff\xfe")),
        ("signed not JSON", signed("enode", b"{nope")),
        ("signed null", signed("smartcar", b"null")),
        ("signed a list of nothing", signed("enode", b"[]")),
        ("signed a number", signed("enode", b"7")),
        ("a webhook over the cap", lambda api: api.post("/webhooks/enode", content=b"x" * 70_000)),
    ]
    run(world, cases)


# -- documents generated from the schema -------------------------------------------------------

GENERATED = 120


def schema_sdl(world: World) -> str:
    return str(world.api.app.state.graphql.schema)  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_generated_documents(world: World, mode: str) -> None:
    """Queries and mutations that hypothesis-graphql builds from the schema: valid ones
    (arguments of the right types, ids no vehicle has), and, in negative mode, invalid
    ones. Sent as a user who is no administrator, so that nothing a valid mutation may
    do (a webhook endpoint) is within reach; every id generated belongs to nobody."""
    sdl = schema_sdl(world)
    kind = (
        hypothesis_graphql.Mode.POSITIVE if mode == "positive" else hypothesis_graphql.Mode.NEGATIVE
    )
    strategy = st.one_of(
        hypothesis_graphql.queries(sdl, mode=kind),
        hypothesis_graphql.mutations(sdl, mode=kind),
    )
    before = {"state": settled(world.db)}
    start = (len(TALLY.server_errors), len(TALLY.changes), len(TALLY.leaks))

    @hypothesis_settings(
        max_examples=GENERATED,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(query=strategy)
    def one(query: str) -> None:
        before["state"] = world.probe(
            f"generated ({mode}): {query[:120]!r}",
            lambda api: api.post("/graphql", json={"query": query}, headers=world.headers),
            before=before["state"],
        )

    one()
    assert TALLY.server_errors[start[0] :] == []
    assert TALLY.changes[start[1] :] == []
    assert TALLY.leaks[start[2] :] == []
