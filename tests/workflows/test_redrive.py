"""An operator's re-drive: a failed vehicle back to `pending`, starting over from what it
holds. Only a retryable failure, unless forced."""

from __future__ import annotations

import pytest

from harness.tenant import Tenant
from settings import Settings
from tests.helpers.store import add_vehicle, events_of, vehicle_row
from workflows.authorization import redrive
from workflows.errors import DomainError, ErrorCode
from workflows.machine import IllegalTransition, Lifecycle
from workflows.vehicles import lock


def failed(tenant: Tenant, provider: str, error: ErrorCode, retryable: bool, **fields) -> str:
    vehicle_id = add_vehicle(tenant.db, client_id=tenant.client_id, provider=provider, **fields)
    with tenant.db.session() as session:
        row = lock(session, vehicle_id)
        assert row is not None
        Lifecycle(session, row).trigger_event("fail", error=error, retryable=retryable)
        session.commit()
    return vehicle_id


def run(tenant: Tenant, settings: Settings, vehicle_id: str, force: bool = False):
    with tenant.db.session() as session:
        return redrive(session, settings, vehicle_id, force=force)


def test_with_tokens_it_validates_again(tenant: Tenant, settings: Settings) -> None:
    vehicle_id = failed(tenant, "Smartcar", ErrorCode.PROVIDER_UNAVAILABLE, True, access_token="t")
    vehicle = run(tenant, settings, vehicle_id)
    assert (vehicle.status, vehicle.step, vehicle.failure_code) == ("pending", "validate", None)
    assert events_of(tenant.db, vehicle_id)[-1] == "connected_vehicle.pending"


def test_a_link_flow_without_a_link_makes_a_new_one(tenant: Tenant, settings: Settings) -> None:
    vehicle_id = failed(
        tenant, "Enode", ErrorCode.PROVIDER_UNAVAILABLE, True, authorization_url="http://old-link"
    )
    vehicle = run(tenant, settings, vehicle_id)
    assert (vehicle.step, vehicle.authorization_url) == ("start_link", None)


def test_a_code_flow_without_tokens_sends_the_user_again(
    tenant: Tenant, settings: Settings
) -> None:
    vehicle_id = failed(tenant, "Smartcar", ErrorCode.PROVIDER_UNAVAILABLE, True)
    vehicle = run(tenant, settings, vehicle_id)
    assert vehicle.step is None
    assert vehicle.authorization_url and "state=" in vehicle.authorization_url


def test_a_permanent_failure_needs_force(tenant: Tenant, settings: Settings) -> None:
    vehicle_id = failed(tenant, "Smartcar", ErrorCode.AUTHORIZATION_DENIED, False)
    with pytest.raises(IllegalTransition) as refused:
        run(tenant, settings, vehicle_id)
    # in words an operator acts on
    assert refused.value.message == "not retryable (AUTHORIZATION_DENIED): re-drive with force"
    assert refused.value.code is ErrorCode.ILLEGAL_TRANSITION
    assert vehicle_row(tenant.db, vehicle_id).status == "failed"
    assert run(tenant, settings, vehicle_id, force=True).status == "pending"


def test_only_a_failed_vehicle_is_redriven(tenant: Tenant, settings: Settings) -> None:
    vehicle_id = failed(tenant, "Smartcar", ErrorCode.PROVIDER_UNAVAILABLE, True)
    with tenant.db.session() as session:
        row = lock(session, vehicle_id)
        assert row is not None
        Lifecycle(session, row).trigger_event("remove")
        session.commit()
    with pytest.raises(IllegalTransition) as refused:
        run(tenant, settings, vehicle_id, force=True)
    assert refused.value.message.startswith("no longer failed: removed since 20")
    with pytest.raises(DomainError) as raised:
        run(tenant, settings, "no-such-vehicle")
    assert raised.value.code is ErrorCode.CONNECTED_VEHICLE_NOT_FOUND
