"""The user's tokens at the three code-flow providers, against their fakes over HTTP:
refreshing gives a working token, single-use refresh tokens die on use, a token is
refreshed (and saved) before it expires rather than used expired, and a refresh that
cannot be redone (revoked, its answer lost) says so."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from providers import AccountRef, CodeFlowAdapter, PermanentError, Reason, RetryableError, Tokens
from providers.fakes.serve import FakeServer
from tests.helpers.adapters import connect, make
from tests.helpers.providers_table import PROVIDERS, ProviderCase

CODE_FLOW = [c for c in PROVIDERS if c.flow == "code"]
# Whether the provider rotates refresh tokens (the used one dies): SPEC §5.
ROTATES = {"Smartcar": True, "Tesla": True, "HighMobility": False}


@dataclass
class Connected:
    server: FakeServer
    adapter: CodeFlowAdapter
    tokens: Tokens


def connected(case: ProviderCase, fakes: dict[str, FakeServer]) -> Connected:
    server = fakes[case.name]
    server.account("owner", case.car)
    c = connect(case, server)
    assert isinstance(c.adapter, CodeFlowAdapter)
    return Connected(server, c.adapter, c.account.require_tokens())


def works(c: Connected, tokens: Tokens) -> bool:
    return len(c.adapter.list_vehicle_ids(AccountRef(tokens=tokens))) == 1


@pytest.mark.parametrize("case", CODE_FLOW, ids=str)
def test_a_refresh_gives_a_working_access_token(
    case: ProviderCase, fakes: dict[str, FakeServer]
) -> None:
    """Refreshing is how a connection outlives its first access token."""
    c = connected(case, fakes)

    fresh = c.adapter.refresh(c.tokens)

    assert fresh.access_token != c.tokens.access_token and fresh.refresh_token
    assert works(c, fresh)
    assert c.server.fake.refreshes == 1


@pytest.mark.parametrize("case", CODE_FLOW, ids=str)
def test_a_rotated_refresh_token_dies_on_use(
    case: ProviderCase, fakes: dict[str, FakeServer]
) -> None:
    """Where refresh tokens are single use, the old one must never be kept: presenting it
    again is refused as lost access. Where they are not, it stays in force."""
    c = connected(case, fakes)
    rotates = ROTATES[case.name]
    assert c.adapter.single_use_refresh is rotates

    fresh = c.adapter.refresh(c.tokens)

    assert (fresh.refresh_token != c.tokens.refresh_token) is rotates
    if rotates:
        with pytest.raises(PermanentError) as raised:
            c.adapter.refresh(c.tokens)
        assert raised.value.reason is Reason.ACCESS_REVOKED
        assert str(c.tokens.refresh_token) not in str(raised.value)
    else:
        assert works(c, c.adapter.refresh(c.tokens))


@pytest.mark.parametrize("case", CODE_FLOW, ids=str)
def test_a_token_with_time_left_is_used_as_it_is(
    case: ProviderCase, fakes: dict[str, FakeServer]
) -> None:
    """A refresh costs a call (and at some providers a rotation): only when needed."""
    c = connected(case, fakes)
    saved: list[Tokens] = []

    kept = c.adapter.ensure_valid(c.tokens, ahead=60, save=saved.append)

    assert kept is c.tokens and saved == []
    assert c.server.fake.refresh_attempts == 0


@pytest.mark.parametrize("case", CODE_FLOW, ids=str)
def test_a_token_about_to_expire_is_refreshed_and_saved_before_use(
    case: ProviderCase, fakes: dict[str, FakeServer]
) -> None:
    """The provider must never see an expired token from the service: a token expiring
    within `ahead` is refreshed first, and the new pair saved before it is used."""
    c = connected(case, fakes)
    c.server.fake.clock_offset += c.server.fake.token_lifetime - 30  # 30 s left, there...
    soon = Tokens(
        c.tokens.access_token, c.tokens.refresh_token, datetime.now(UTC) + timedelta(seconds=30)
    )
    saved: list[Tokens] = []  # ...and here

    fresh = c.adapter.ensure_valid(soon, ahead=120, save=saved.append)
    c.server.fake.clock_offset += 60  # the old token has expired at the provider

    assert saved == [fresh] and fresh.valid_for(120)
    assert works(c, fresh)
    assert c.server.fake.expired_token_calls == 0


@pytest.mark.parametrize("case", CODE_FLOW, ids=str)
def test_refreshed_tokens_that_cannot_be_saved_are_not_used(
    case: ProviderCase, fakes: dict[str, FakeServer]
) -> None:
    """A rotated pair used but not saved would be lost with the old one spent."""
    c = connected(case, fakes)
    expiring = Tokens(c.tokens.access_token, c.tokens.refresh_token, datetime.now(UTC))

    def save(tokens: Tokens) -> None:
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError):
        c.adapter.ensure_valid(expiring, ahead=60, save=save)


@pytest.mark.parametrize("case", CODE_FLOW, ids=str)
def test_a_refresh_after_revoked_consent_is_access_revoked(
    case: ProviderCase, fakes: dict[str, FakeServer]
) -> None:
    """The user took the access back at the provider: no retry can help."""
    c = connected(case, fakes)
    c.server.fake.revoke_account("owner")

    with pytest.raises(PermanentError) as raised:
        c.adapter.refresh(c.tokens)

    assert raised.value.reason is Reason.ACCESS_REVOKED


@pytest.mark.parametrize("case", CODE_FLOW, ids=str)
def test_a_refresh_whose_answer_is_lost(case: ProviderCase, fakes: dict[str, FakeServer]) -> None:
    """The provider may have rotated the refresh token while its answer never came: the
    error says the answer was lost, and a single-use token is then refused for good."""
    c = connected(case, fakes)
    impatient = make(case, c.server.url, timeout=0.5)
    assert isinstance(impatient, CodeFlowAdapter) and case.token_path
    c.server.fault(case.token_path, 504, lose_answer=True, delay=1.0)  # past our timeout

    with pytest.raises(RetryableError) as raised:
        impatient.refresh(c.tokens)

    assert raised.value.answer_lost
    if ROTATES[case.name]:
        with pytest.raises(PermanentError) as again:
            c.adapter.refresh(c.tokens)
        assert again.value.reason is Reason.ACCESS_REVOKED
    else:
        assert works(c, c.adapter.refresh(c.tokens))


@pytest.mark.parametrize("case", CODE_FLOW, ids=str)
def test_a_gateway_timeout_on_refresh_counts_as_a_lost_answer(
    case: ProviderCase, fakes: dict[str, FakeServer]
) -> None:
    """A 504 comes from a gateway that gave up waiting: the provider behind it may have
    spent the refresh token, so the answer is to be treated as lost."""
    c = connected(case, fakes)
    assert case.token_path
    c.server.fault(case.token_path, 504, lose_answer=True)

    with pytest.raises(RetryableError) as raised:
        c.adapter.refresh(c.tokens)

    assert raised.value.answer_lost


@pytest.mark.parametrize("case", CODE_FLOW, ids=str)
def test_a_refresh_refused_for_the_apps_own_fault_is_not_lost_access(
    case: ProviderCase, fakes: dict[str, FakeServer]
) -> None:
    """Only `invalid_grant` means the user's grant is gone: the app's wrong secret
    (`invalid_client`) must not cost every user their connection."""
    c = connected(case, fakes)
    wrong = make(case, c.server.url, secret="not-the-secret")
    assert isinstance(wrong, CodeFlowAdapter)

    with pytest.raises(PermanentError) as refused:
        wrong.refresh(c.tokens)

    assert refused.value.reason is Reason.PROVIDER_REJECTED
    assert works(c, c.adapter.refresh(c.tokens))  # the grant itself is fine
