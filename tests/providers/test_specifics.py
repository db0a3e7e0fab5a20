"""What only one provider does, checked against its fake."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from harness.tenant import APP_ID, APP_SECRET
from providers import AccountRef, Credentials, PermanentError, Reason, adapter_for
from providers.enode import EnodeAdapter
from providers.fakes.browser import consent
from providers.fakes.serve import FakeServer
from providers.highmobility import HighMobilityAdapter
from providers.smartcar import SmartcarAdapter
from providers.tesla import TeslaAdapter
from tests.helpers.adapters import CALLBACK, VERIFIER, MemoryTokens, back_query
from tests.helpers.providers_table import BY_NAME


def credentials(server: FakeServer) -> Credentials:
    return Credentials(APP_ID, APP_SECRET, server.url)


# -- Smartcar ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ("access_denied", Reason.AUTHORIZATION_DENIED),
        ("vehicle_incompatible", Reason.CONNECT_PROVIDER_NOT_SUPPORTED),
        ("no_vehicles", Reason.CONNECT_NO_VEHICLE),
        ("something_new", Reason.AUTHORIZATION_DENIED),
    ],
)
def test_smartcar_callback_errors(error: str, reason: Reason) -> None:
    assert SmartcarAdapter.callback_error(error) is reason


def test_smartcar_sends_an_empty_account_back_with_no_vehicles(
    fakes: dict[str, FakeServer],
) -> None:
    server = fakes["Smartcar"]
    server.account("empty")
    url = SmartcarAdapter(credentials(server)).authorization_url(
        state="s-1", redirect_uri=CALLBACK, scopes=[]
    )
    assert back_query(consent(url, account="empty"))["error"] == "no_vehicles"


def test_smartcar_asks_for_one_vehicle_in_test_mode_against_a_sandbox() -> None:
    sandbox = SmartcarAdapter(Credentials(APP_ID, APP_SECRET, "https://sandbox.example"))
    live = SmartcarAdapter(Credentials(APP_ID, APP_SECRET))
    assert "mode=test" in sandbox.authorization_url(state="s", redirect_uri=CALLBACK, scopes=[])
    url = live.authorization_url(state="s", redirect_uri=CALLBACK, scopes=[])
    assert "mode=live" in url and "single_select=true" in url


# -- Tesla ---------------------------------------------------------------------------------------


def test_tesla_requires_a_state(fakes: dict[str, FakeServer]) -> None:
    server = fakes["Tesla"]
    url = TeslaAdapter(credentials(server)).authorization_url(
        state="s", redirect_uri=CALLBACK, scopes=[]
    )
    assert httpx.get(url.replace("state=s", "state=")).status_code == 400


def test_tesla_tokens_name_the_regional_api(fakes: dict[str, FakeServer]) -> None:
    class NoAudience(TeslaAdapter):
        def token_params(self) -> dict[str, str]:
            return {}

    server = fakes["Tesla"]
    tesla = TeslaAdapter(credentials(server))
    assert tesla.token_params() == {"audience": server.url}
    url = tesla.authorization_url(state="s-1", redirect_uri=CALLBACK, scopes=["location"])
    code = back_query(consent(url))["code"]
    with pytest.raises(PermanentError):
        NoAudience(credentials(server)).exchange_code(code, redirect_uri=CALLBACK)


def test_tesla_reads_granted_scopes_from_the_jwt(fakes: dict[str, FakeServer]) -> None:
    server = fakes["Tesla"]
    server.account("owner", BY_NAME["Tesla"].car, withheld=["vehicle_location"])
    tesla = TeslaAdapter(credentials(server))
    url = tesla.authorization_url(state="s-1", redirect_uri=CALLBACK, scopes=["location"])
    tokens = tesla.exchange_code(
        back_query(consent(url, account="owner"))["code"], redirect_uri=CALLBACK
    )
    granted = tesla.granted_scopes(AccountRef(tokens=tokens), "any")
    assert granted == {"openid", "offline_access", "vehicle_device_data"}


# -- High Mobility -----------------------------------------------------------------------------


def hm_code(server: FakeServer, verifier: str | None = VERIFIER) -> tuple[HighMobilityAdapter, str]:
    hm = HighMobilityAdapter(credentials(server))
    url = hm.authorization_url(
        state="s-1", redirect_uri=CALLBACK, scopes=["location"], code_verifier=verifier
    )
    assert ("code_challenge_method=S256" in url) == (verifier is not None)
    return hm, back_query(consent(url))["code"]


@pytest.mark.parametrize("verifier", [None, "not-the-verifier-" + "x" * 40])
def test_high_mobility_enforces_pkce(fakes: dict[str, FakeServer], verifier: str | None) -> None:
    hm, code = hm_code(fakes["HighMobility"])
    with pytest.raises(PermanentError) as raised:
        hm.exchange_code(code, redirect_uri=CALLBACK, code_verifier=verifier)
    assert raised.value.reason is Reason.AUTH_CODE_INVALID


def test_high_mobility_takes_json_only(fakes: dict[str, FakeServer]) -> None:
    server = fakes["HighMobility"]
    _, code = hm_code(server)
    form = httpx.post(
        f"{server.url}/v1/access_tokens",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": APP_ID,
            "client_secret": APP_SECRET,
            "redirect_uri": CALLBACK,
            "code_verifier": VERIFIER,
        },
    )
    assert form.status_code == 401
    hm, code = hm_code(server)
    assert hm.exchange_code(code, redirect_uri=CALLBACK, code_verifier=VERIFIER).access_token


# -- Enode -------------------------------------------------------------------------------------


def enode(server: FakeServer, cache: Any = None) -> EnodeAdapter:
    made = adapter_for("Enode", credentials(server), token_cache=cache)
    assert isinstance(made, EnodeAdapter)
    return made


def test_enode_shares_one_app_token_until_it_expires(fakes: dict[str, FakeServer]) -> None:
    server, cache = fakes["Enode"], MemoryTokens()
    for _ in range(3):  # three jobs, each with its own adapter
        enode(server, cache).list_vehicle_ids(AccountRef(user_id="u-1"))
    assert server.fake.token_requests == 1

    server.fake.app_tokens.clear()  # Enode no longer takes the cached token
    enode(server, cache).list_vehicle_ids(AccountRef(user_id="u-1"))
    assert server.fake.token_requests == 2


def test_enode_links_are_single_use_and_expire(fakes: dict[str, FakeServer]) -> None:
    server = fakes["Enode"]
    link = enode(server, MemoryTokens()).create_link(
        user_id="u-1", redirect_uri=f"{CALLBACK}?state=s-1", scopes=["location"]
    )
    consent(link)
    assert httpx.get(link).status_code == 400  # used

    other = enode(server, MemoryTokens()).create_link(
        user_id="u-2", redirect_uri=f"{CALLBACK}?state=s-2", scopes=[]
    )
    server.fake.clock_offset += 24 * 3600 + 1
    assert httpx.get(other).status_code == 400  # expired


def test_enode_wrong_app_credentials_are_permanent(fakes: dict[str, FakeServer]) -> None:
    server = fakes["Enode"]
    wrong = EnodeAdapter(Credentials(APP_ID, "wrong", server.url))
    with pytest.raises(PermanentError) as raised:
        wrong.list_vehicle_ids(AccountRef(user_id="u-1"))
    assert raised.value.reason is Reason.PROVIDER_REJECTED


def test_enode_requires_its_version_header(fakes: dict[str, FakeServer]) -> None:
    server = fakes["Enode"]
    token = httpx.post(
        f"{server.url}/oauth2/token",
        auth=(APP_ID, APP_SECRET),
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    answer = httpx.get(
        f"{server.url}/users/u-1/vehicles", headers={"authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/problem+json")
