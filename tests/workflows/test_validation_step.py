"""The validation step itself, run the way a redelivered or duplicated task runs it:
twice, and concurrently. One exchange, one transition, one event."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.tenant import Tenant
from providers import RetryableError, RetryPolicy
from providers.fakes.serve import FakeServer
from settings import Settings
from tests.helpers.store import events_of, pending_with_code, vehicle_row
from workflows import provider_steps
from workflows.locked import fire
from workflows.machine import Status


def test_concurrent_runs_exchange_once(
    tenant: Tenant, smartcar: FakeServer, settings: Settings
) -> None:
    vehicle_id, code = pending_with_code(tenant.db, settings, tenant)
    smartcar.fake.latency = 0.2  # every provider call is slow: the runs overlap

    with ThreadPoolExecutor(max_workers=4) as pool:
        for f in [
            pool.submit(provider_steps.validate, tenant.db, settings, vehicle_id) for _ in range(4)
        ]:
            f.result()

    assert vehicle_row(tenant.db, vehicle_id).status == Status.authorized
    assert smartcar.fake.exchange_attempts == 1
    assert smartcar.fake.exchanges[code] == 1
    assert events_of(tenant.db, vehicle_id) == [
        "connected_vehicle.created",
        "connected_vehicle.authorized",
    ]


def test_a_second_run_after_success_does_nothing(
    tenant: Tenant, smartcar: FakeServer, settings: Settings
) -> None:
    vehicle_id, _ = pending_with_code(tenant.db, settings, tenant)
    provider_steps.validate(tenant.db, settings, vehicle_id)
    requests_after_first = sum(smartcar.fake.requests.values())

    provider_steps.validate(tenant.db, settings, vehicle_id)

    assert sum(smartcar.fake.requests.values()) == requests_after_first
    assert len(events_of(tenant.db, vehicle_id)) == 2


def test_tokens_bought_survive_a_crash_before_validation(
    tenant: Tenant, smartcar: FakeServer, settings: Settings
) -> None:
    vehicle_id, code = pending_with_code(tenant.db, settings, tenant)
    # the run fails after the exchange (every inline try of the read)
    inline = RetryPolicy.of(settings).inline_retries
    smartcar.fault("/v2.0/vehicles", 503, times=1 + inline)
    with pytest.raises(RetryableError):
        provider_steps.validate(tenant.db, settings, vehicle_id)
    row = vehicle_row(tenant.db, vehicle_id)
    assert row.access_token and row.auth_code is None

    provider_steps.validate(tenant.db, settings, vehicle_id)  # the retry

    assert vehicle_row(tenant.db, vehicle_id).status == Status.authorized
    assert smartcar.fake.exchanges[code] == 1


def test_a_validation_step_is_three_transactions_at_most(
    tenant: Tenant, smartcar: FakeServer, settings: Settings
) -> None:
    from sqlalchemy import event

    vehicle_id, _ = pending_with_code(tenant.db, settings, tenant)
    transactions: list[str] = []

    def begun(conn) -> None:
        transactions.append("begin")

    event.listen(tenant.db.engine, "begin", begun)
    try:
        provider_steps.validate(tenant.db, settings, vehicle_id)  # claim, tokens, decide
    finally:
        event.remove(tenant.db.engine, "begin", begun)

    assert vehicle_row(tenant.db, vehicle_id).status == Status.authorized
    assert 1 <= len(transactions) <= 3, transactions


def test_a_token_refused_at_the_read_is_refreshed_once_and_the_read_tried_again(
    tenant: Tenant, smartcar: FakeServer, settings: Settings
) -> None:
    """The provider drops the access token it just gave (401 on the account's read): the
    session refreshes it once and reads again; the vehicle is authorized."""
    vehicle_id, _ = pending_with_code(tenant.db, settings, tenant)
    smartcar.fault("/v2.0/vehicles", 401, times=1)

    provider_steps.validate(tenant.db, settings, vehicle_id)

    assert vehicle_row(tenant.db, vehicle_id).status == Status.authorized
    assert smartcar.fake.refresh_attempts == 1


def test_a_token_refused_again_after_its_refresh_fails_the_vehicle_access_revoked(
    tenant: Tenant, smartcar: FakeServer, settings: Settings
) -> None:
    vehicle_id, _ = pending_with_code(tenant.db, settings, tenant)
    smartcar.fault("/v2.0/vehicles", 401, times=10)

    provider_steps.validate(tenant.db, settings, vehicle_id)

    row = vehicle_row(tenant.db, vehicle_id)
    assert (row.status, row.failure_code) == (Status.failed, "ACCESS_REVOKED")
    assert smartcar.fake.refresh_attempts == 1  # one refresh, never a loop


@pytest.mark.parametrize("refused", [1, 10], ids=["once", "for-good"])
def test_a_removal_whose_token_is_refused_still_ends_removed(
    tenant: Tenant, smartcar: FakeServer, settings: Settings, refused: int
) -> None:
    """Refused once: refreshed, and the access given back at the provider. Refused for
    good: gone at the provider already, as good as given back. Removed either way."""
    vehicle_id, _ = pending_with_code(tenant.db, settings, tenant)
    provider_steps.validate(tenant.db, settings, vehicle_id)
    assert fire(tenant.db, vehicle_id, "request_removal")
    smartcar.fault("/v2.0/vehicles/", 401, times=refused)

    provider_steps.revoke(tenant.db, settings, vehicle_id)

    assert vehicle_row(tenant.db, vehicle_id).status == Status.removed
    assert smartcar.fake.refresh_attempts == 1
    assert smartcar.fake.revocations == (1 if refused == 1 else 0)
