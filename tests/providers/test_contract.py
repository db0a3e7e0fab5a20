"""The adapter contract, run against every provider's fake over real HTTP on loopback
(the way `transitions` runs its core suite against each machine variant): the URL the
user is sent to, connecting, reading the account, and every class of error."""

from __future__ import annotations

import socket
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from harness.tenant import APP_ID, APP_SECRET
from providers import (
    AccountRef,
    Adapter,
    CodeFlowAdapter,
    Credentials,
    PermanentError,
    Reason,
    RetryableError,
    RetryPolicy,
    Tokens,
    adapter_for,
)
from providers.fakes.browser import consent
from providers.fakes.serve import FakeServer
from tests.helpers.adapters import (
    CALLBACK,
    VERIFIER,
    MemoryTokens,
    back_query,
    connect,
    consent_url,
    make,
)
from tests.helpers.providers_table import PROVIDERS, ProviderCase

CODE_FLOW = [c for c in PROVIDERS if c.flow == "code"]


def code_of(case: ProviderCase, server: FakeServer, account: str = "owner") -> tuple[Adapter, str]:
    adapter = make(case, server.url)
    return adapter, back_query(consent(consent_url(case, adapter), account=account))["code"]


@pytest.fixture(params=PROVIDERS, ids=str)
def case(request: pytest.FixtureRequest) -> ProviderCase:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def server(case: ProviderCase, fakes: dict[str, FakeServer]) -> FakeServer:
    server = fakes[case.name]
    server.account("owner", case.car)
    return server


# -- the flow --------------------------------------------------------------------------------


def test_the_consent_url_leads_to_the_providers_page(
    case: ProviderCase, server: FakeServer
) -> None:
    adapter = make(case, server.url, token_cache=MemoryTokens())
    url = consent_url(case, adapter, scopes=("location", "charge_state"))
    assert url.startswith(server.url)
    page = httpx.get(url)
    assert page.status_code == 200 and "Allow" in page.text and "Deny" in page.text
    if isinstance(adapter, CodeFlowAdapter):
        q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        assert (q["response_type"], q["client_id"], q["redirect_uri"], q["state"]) == (
            "code",
            APP_ID,
            CALLBACK,
            "s-1",
        )
        asked = set(q["scope"].split())
        assert set(adapter.provider_scopes(["location", "charge_state"])) == asked
        assert ("code_challenge" in q) == adapter.uses_pkce


def test_connect_and_read_the_account(case: ProviderCase, server: FakeServer) -> None:
    c = connect(case, server)
    ids = c.adapter.list_vehicle_ids(c.account)
    info = c.adapter.read_vehicle(c.account, ids[0])
    granted = c.adapter.granted_scopes(c.account, ids[0])
    assert len(ids) == 1
    assert info.make.casefold() == case.car["make"].casefold()
    assert info.vin == case.car["vin"]
    assert set(c.adapter.provider_scopes(["location"])) <= granted


def test_every_vehicle_of_the_account_is_listed(case: ProviderCase, server: FakeServer) -> None:
    second = {**case.car, "vin": "SECONDVIN00000001"}
    server.account("two", case.car, second)
    c = connect(case, server, account="two")
    assert len(c.adapter.list_vehicle_ids(c.account)) == 2


def test_a_withheld_scope_is_not_granted(case: ProviderCase, server: FakeServer) -> None:
    server.account("shy", case.car, withheld=[case.location_scope])
    c = connect(case, server, account="shy")
    vehicle_id = c.adapter.list_vehicle_ids(c.account)[0]
    assert case.location_scope not in c.adapter.granted_scopes(c.account, vehicle_id)


def test_deny_comes_back_with_an_error(case: ProviderCase, server: FakeServer) -> None:
    adapter = make(case, server.url, token_cache=MemoryTokens())
    back = back_query(consent(consent_url(case, adapter), decision="deny"))
    assert back["error"] == "access_denied"
    assert adapter.callback_error(back["error"]) is Reason.AUTHORIZATION_DENIED


# -- the code and its rules (code flow) ----------------------------------------------------


@pytest.mark.parametrize("case", CODE_FLOW, ids=str)
def test_a_code_is_single_use(case: ProviderCase, server: FakeServer) -> None:
    c = connect(case, server)
    assert isinstance(c.adapter, CodeFlowAdapter) and c.code
    with pytest.raises(PermanentError) as raised:
        c.adapter.exchange_code(c.code, redirect_uri=CALLBACK, code_verifier=VERIFIER)
    assert raised.value.reason is Reason.AUTH_CODE_INVALID
    assert c.code not in str(raised.value)  # no code or secret in an error message
    assert server.fake.exchanges[c.code] == 1


@pytest.mark.parametrize("case", CODE_FLOW, ids=str)
@pytest.mark.parametrize("spoil", ["expired", "other redirect_uri"])
def test_a_code_is_refused(case: ProviderCase, server: FakeServer, spoil: str) -> None:
    adapter, code = code_of(case, server)
    assert isinstance(adapter, CodeFlowAdapter)
    redirect = CALLBACK
    if spoil == "expired":
        server.fake.clock_offset += 601
    else:
        redirect = "http://elsewhere.example/cb"
    with pytest.raises(PermanentError) as raised:
        adapter.exchange_code(code, redirect_uri=redirect, code_verifier=VERIFIER)
    assert raised.value.reason is Reason.AUTH_CODE_INVALID


@pytest.mark.parametrize("case", CODE_FLOW, ids=str)
def test_a_wrong_app_secret_is_permanent(case: ProviderCase, server: FakeServer) -> None:
    _, code = code_of(case, server)
    wrong = make(case, server.url, secret="wrong-secret")
    assert isinstance(wrong, CodeFlowAdapter)
    with pytest.raises(PermanentError) as raised:
        wrong.exchange_code(code, redirect_uri=CALLBACK, code_verifier=VERIFIER)
    assert raised.value.reason is Reason.PROVIDER_REJECTED
    assert "wrong-secret" not in str(raised.value)


@pytest.mark.parametrize("case", CODE_FLOW, ids=str)
def test_a_failed_exchange_leaves_the_code_unspent(case: ProviderCase, server: FakeServer) -> None:
    adapter, code = code_of(case, server)
    assert isinstance(adapter, CodeFlowAdapter) and case.token_path
    server.fault(case.token_path, 503)
    with pytest.raises(RetryableError):
        adapter.exchange_code(code, redirect_uri=CALLBACK, code_verifier=VERIFIER)
    adapter.exchange_code(code, redirect_uri=CALLBACK, code_verifier=VERIFIER)
    assert server.fake.exchanges[code] == 1


@pytest.mark.parametrize("case", CODE_FLOW, ids=str)
def test_a_token_that_is_not_the_providers_is_revoked_access(
    case: ProviderCase, server: FakeServer
) -> None:
    adapter = make(case, server.url)
    with pytest.raises(PermanentError) as raised:
        adapter.list_vehicle_ids(AccountRef(tokens=Tokens("not-a-token", None, None)))
    assert raised.value.reason is Reason.ACCESS_REVOKED


# -- transient errors: every provider, on the account reads ---------------------------------


def retryable_statuses(case: ProviderCase) -> list[int]:
    return [500, 503, 429] + ([408] if case.name == "Tesla" else [])


def test_transient_answers_are_retryable(case: ProviderCase, server: FakeServer) -> None:
    c = connect(case, server)
    for status in retryable_statuses(case):
        server.fault(case.api_path, status, retry_after=7)  # longer than a read waits inline
        with pytest.raises(RetryableError) as raised:
            c.adapter.list_vehicle_ids(c.account)
        assert raised.value.retry_after == 7, status
    assert len(c.adapter.list_vehicle_ids(c.account)) == 1  # and then it works


def test_reads_are_tried_again_at_once_within_one_budget(
    case: ProviderCase, server: FakeServer
) -> None:
    c = connect(case, server)
    budget = RetryPolicy(max_attempts=1, base=0, cap=0).inline_retries
    assert budget >= 1
    server.fault(case.api_path, 503, times=budget)
    assert len(c.adapter.list_vehicle_ids(c.account)) == 1  # a flaky read costs a moment

    def calls() -> int:
        return sum(n for p, n in server.fake.requests.items() if p.startswith(case.api_path))

    before = calls()
    server.fault(case.api_path, 503, times=1)
    with pytest.raises(RetryableError):  # the budget is spent: the step's policy decides
        c.adapter.list_vehicle_ids(c.account)
    assert calls() == before + 1  # tried once, not again
    fresh = connect(case, server)
    server.fault(case.api_path, 503, times=1, retry_after=5)
    with pytest.raises(RetryableError):  # the provider asks for a longer wait: the step's
        fresh.adapter.list_vehicle_ids(fresh.account)


def test_a_timeout_is_retryable(case: ProviderCase, server: FakeServer) -> None:
    c = connect(case, server)
    impatient = make(case, server.url, timeout=0.3, token_cache=MemoryTokens())
    impatient.list_vehicle_ids(c.account)  # warms Enode's app token
    server.fault(case.api_path, 0, delay=0.8, times=3)  # past the timeout, every inline try
    with pytest.raises(RetryableError):
        impatient.list_vehicle_ids(c.account)


def test_a_refused_connection_is_retryable(case: ProviderCase) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket is closed
    adapter = make(case, f"http://127.0.0.1:{port}", token_cache=MemoryTokens())
    with pytest.raises(RetryableError):
        if isinstance(adapter, CodeFlowAdapter):
            adapter.exchange_code("c", redirect_uri=CALLBACK)
        else:
            consent_url(case, adapter)


def test_production_endpoints_without_a_base_url(case: ProviderCase) -> None:
    adapter = adapter_for(case.name, Credentials(APP_ID, APP_SECRET))
    assert adapter._endpoint(adapter.api_url).startswith("https://")
    if isinstance(adapter, CodeFlowAdapter):
        url = adapter.authorization_url(state="s", redirect_uri=CALLBACK, scopes=[])
        assert url.startswith(adapter.authorize_url + "?")
