"""The refresh step and the token store, run directly (no worker) against the Smartcar
fake: what ends the step when the provider refuses the service itself, and what is never
written back onto a vehicle that left."""

from __future__ import annotations

from datetime import timedelta

from harness.tenant import Tenant
from providers import Tokens
from providers.fakes.serve import FakeServer
from providers.names import Provider
from settings import Settings
from store.models import ConnectedVehicle, utcnow
from tests.helpers.store import pending_with_code, vehicle_row
from workflows import provider_steps, tokens
from workflows.provider_credentials import set_provider_credentials
from workflows.session import VehicleSession


def authorized(tenant: Tenant, settings: Settings) -> str:
    vehicle_id, _ = pending_with_code(tenant.db, settings, tenant)
    provider_steps.validate(tenant.db, settings, vehicle_id)
    assert vehicle_row(tenant.db, vehicle_id).status == "authorized"
    return vehicle_id


def due_now(tenant: Tenant, vehicle_id: str, *, expires_in: float | None = None) -> None:
    """The refresh step due now (by beat's pass); `expires_in`: the token's time left."""
    with tenant.db.session() as session:
        row = session.get(ConnectedVehicle, vehicle_id)
        assert row is not None
        row.step, row.step_due_at, row.refresh_due_at = "refresh", utcnow(), None
        if expires_in is not None:
            row.token_expires_at = utcnow() + timedelta(seconds=expires_in)
        session.commit()


def test_a_refresh_refused_for_the_apps_credentials_keeps_the_vehicle(
    tenant: Tenant, smartcar: FakeServer, settings: Settings
) -> None:
    """The client's app secret is wrong at the provider: the users' grants are fine, so
    the vehicle stays authorized; the step ends (no endless re-drive), its error kept
    for operators, the refresh due again later."""
    vehicle_id = authorized(tenant, settings)
    due_now(tenant, vehicle_id, expires_in=300)  # inside the margin
    with tenant.db.session() as session:
        set_provider_credentials(
            session,
            tenant.client_id,
            Provider.Smartcar,
            oauth_client_id="app-1",
            oauth_client_secret="not-the-secret",
            base_url=smartcar.url,
        )

    tokens.refresh(tenant.db, settings, vehicle_id)

    row = vehicle_row(tenant.db, vehicle_id)
    assert (row.status, row.step) == ("authorized", None)
    assert row.last_error and "invalid_client" in row.last_error
    assert row.refresh_due_at and row.refresh_due_at > utcnow() + timedelta(minutes=4)
    assert row.access_token  # nothing forgotten


def test_a_refresh_step_finds_the_work_done_by_another(
    tenant: Tenant, smartcar: FakeServer, settings: Settings
) -> None:
    """Tokens still valid beyond the margin (another run refreshed): no call, the step
    ends and the next refresh is due."""
    vehicle_id = authorized(tenant, settings)
    due_now(tenant, vehicle_id)

    tokens.refresh(tenant.db, settings, vehicle_id)

    assert smartcar.fake.refresh_attempts == 0
    row = vehicle_row(tenant.db, vehicle_id)
    assert (row.step, row.status) == (None, "authorized")
    assert row.refresh_due_at is not None


def test_tokens_bought_after_the_vehicle_left_are_not_kept(
    tenant: Tenant, smartcar: FakeServer, settings: Settings
) -> None:
    """A removal that won the race: what an exchange or refresh bought meanwhile is not
    written back onto the removed vehicle."""
    vehicle_id = authorized(tenant, settings)
    with tenant.db.session() as session:
        row = session.get(ConnectedVehicle, vehicle_id)
        assert row is not None
        row.status, row.access_token, row.refresh_token = "removed", None, None
        session.commit()

    late = Tokens("late-at", "late-rt", utcnow())
    VehicleSession(tenant.db, settings, vehicle_id).save_tokens(late)

    row = vehicle_row(tenant.db, vehicle_id)
    assert (row.access_token, row.refresh_token) == (None, None)
