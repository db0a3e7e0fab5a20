"""The Smartcar adapter against its fake, over real HTTP on loopback: URL building, the
code exchange and its rules, the account reads, and every class of error."""

from __future__ import annotations

import socket
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from providers import Credentials, PermanentError, Reason, RetryableError, adapter_for
from providers.smartcar import SmartcarAdapter
from tests.fixtures import APP_ID, APP_SECRET, FakeServer, car, consent

CALLBACK = "http://testserver/oauth/callback"


def adapter(url: str, secret: str = APP_SECRET, timeout: float = 2.0) -> SmartcarAdapter:
    made = adapter_for("Smartcar", Credentials(APP_ID, secret, url), timeout=timeout)
    assert isinstance(made, SmartcarAdapter)
    return made


def code_from(smartcar: FakeServer, account: str = "demo", scopes=("location",)) -> str:
    url = adapter(smartcar.url).authorization_url(
        state="s-1", redirect_uri=CALLBACK, scopes=list(scopes)
    )
    back = parse_qs(urlsplit(consent(url, account=account)).query)
    assert back["state"] == ["s-1"]
    return back["code"][0]


def test_the_connect_url_carries_what_smartcar_requires(smartcar: FakeServer) -> None:
    url = adapter(smartcar.url).authorization_url(
        state="st", redirect_uri=CALLBACK, scopes=["location", "charge_state"]
    )
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.path == "/oauth/authorize"
    assert q["response_type"] == "code"
    assert q["client_id"] == APP_ID
    assert q["redirect_uri"] == CALLBACK
    assert q["state"] == "st"
    assert q["mode"] == "test"
    assert q["scope"].split() == [
        "read_vehicle_info",
        "read_vin",
        "read_location",
        "read_battery",
        "read_charge",
    ]


def test_production_endpoints_without_a_base_url() -> None:
    prod = adapter_for("Smartcar", Credentials(APP_ID, APP_SECRET))
    url = prod.authorization_url(state="s", redirect_uri=CALLBACK, scopes=[])
    assert url.startswith("https://connect.smartcar.com/oauth/authorize?")
    assert "mode=live" in url


def test_exchange_then_read_the_account(smartcar: FakeServer) -> None:
    smartcar.account("alice", car(vin="VINALICE000000001", make="Kia", model="EV6"))
    code = code_from(smartcar, "alice", scopes=("location", "odometer"))
    sc = adapter(smartcar.url)

    tokens = sc.exchange_code(code, redirect_uri=CALLBACK)
    ids = sc.list_vehicle_ids(tokens)
    info = sc.read_vehicle(tokens, ids[0])
    granted = sc.granted_scopes(tokens, ids[0])

    assert tokens.refresh_token and tokens.expires_at is not None
    assert len(ids) == 1
    assert (info.make, info.model, info.vin) == ("KIA", "EV6", "VINALICE000000001")
    assert set(sc.provider_scopes(["location", "odometer"])) <= granted
    assert smartcar.fake.exchanges[code] == 1


def test_a_code_is_single_use(smartcar: FakeServer) -> None:
    code = code_from(smartcar)
    sc = adapter(smartcar.url)
    sc.exchange_code(code, redirect_uri=CALLBACK)
    with pytest.raises(PermanentError) as raised:
        sc.exchange_code(code, redirect_uri=CALLBACK)
    assert raised.value.reason is Reason.AUTH_CODE_INVALID
    assert code not in str(raised.value)  # no code or secret in an error message
    assert smartcar.fake.exchanges[code] == 1


def test_a_code_expires_after_ten_minutes(smartcar: FakeServer) -> None:
    code = code_from(smartcar)
    smartcar.fake.clock_offset += 601
    with pytest.raises(PermanentError) as raised:
        adapter(smartcar.url).exchange_code(code, redirect_uri=CALLBACK)
    assert raised.value.reason is Reason.AUTH_CODE_INVALID


def test_the_redirect_uri_must_match(smartcar: FakeServer) -> None:
    code = code_from(smartcar)
    with pytest.raises(PermanentError) as raised:
        adapter(smartcar.url).exchange_code(code, redirect_uri="http://elsewhere/cb")
    assert raised.value.reason is Reason.AUTH_CODE_INVALID


def test_a_wrong_client_secret_is_permanent(smartcar: FakeServer) -> None:
    code = code_from(smartcar)
    with pytest.raises(PermanentError) as raised:
        adapter(smartcar.url, secret="wrong").exchange_code(code, redirect_uri=CALLBACK)
    assert raised.value.reason is Reason.PROVIDER_REJECTED
    assert "wrong" not in str(raised.value)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(smartcar: FakeServer, status: int) -> None:
    code = code_from(smartcar)
    smartcar.fault("/oauth/token", status)
    with pytest.raises(RetryableError):
        adapter(smartcar.url).exchange_code(code, redirect_uri=CALLBACK)
    # the code was not spent: the next try succeeds
    adapter(smartcar.url).exchange_code(code, redirect_uri=CALLBACK)


def test_rate_limits_are_retryable_and_carry_retry_after(smartcar: FakeServer) -> None:
    code = code_from(smartcar)
    tokens = adapter(smartcar.url).exchange_code(code, redirect_uri=CALLBACK)
    smartcar.fault("/v2.0/vehicles", 429, retry_after=7)
    with pytest.raises(RetryableError) as raised:
        adapter(smartcar.url).list_vehicle_ids(tokens)
    assert raised.value.retry_after == 7


def test_a_timeout_is_retryable(smartcar: FakeServer) -> None:
    code = code_from(smartcar)
    smartcar.fault("/oauth/token", 0, delay=1.0)  # hangs past the client's timeout
    with pytest.raises(RetryableError):
        adapter(smartcar.url, timeout=0.3).exchange_code(code, redirect_uri=CALLBACK)


def test_a_refused_connection_is_retryable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket is closed
    with pytest.raises(RetryableError):
        adapter(f"http://127.0.0.1:{port}").exchange_code("c", redirect_uri=CALLBACK)


def test_a_revoked_token_is_permanent(smartcar: FakeServer) -> None:
    from providers import Tokens

    with pytest.raises(PermanentError) as raised:
        adapter(smartcar.url).list_vehicle_ids(Tokens("not-a-token", None, None))
    assert raised.value.reason is Reason.ACCESS_REVOKED


def test_a_withheld_permission_reads_as_scope_not_granted(smartcar: FakeServer) -> None:
    smartcar.account("bob", car(), withheld=["read_vin"])
    sc = adapter(smartcar.url)
    tokens = sc.exchange_code(code_from(smartcar, "bob"), redirect_uri=CALLBACK)
    vehicle_id = sc.list_vehicle_ids(tokens)[0]
    assert "read_vin" not in sc.granted_scopes(tokens, vehicle_id)
    with pytest.raises(PermanentError) as raised:
        sc.read_vehicle(tokens, vehicle_id)
    assert raised.value.reason is Reason.SCOPE_NOT_GRANTED


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ("access_denied", Reason.AUTHORIZATION_DENIED),
        ("vehicle_incompatible", Reason.CONNECT_PROVIDER_NOT_SUPPORTED),
        ("no_vehicles", Reason.CONNECT_NO_VEHICLE),
    ],
)
def test_callback_errors_map_to_reasons(error: str, reason: Reason) -> None:
    assert SmartcarAdapter.callback_error(error) is reason


def test_the_fake_consent_page_denies_and_refuses_unknown_apps(smartcar: FakeServer) -> None:
    sc = adapter(smartcar.url)
    url = sc.authorization_url(state="s-2", redirect_uri=CALLBACK, scopes=[])
    back = parse_qs(urlsplit(consent(url, decision="deny")).query)
    assert back == {
        "error": ["access_denied"],
        "error_description": ["User denied access"],
        "state": ["s-2"],
    }
    wrong_redirect = sc.authorization_url(state="s", redirect_uri="http://evil/cb", scopes=[])
    assert httpx.get(wrong_redirect).status_code == 400
