"""The refresh step: the user's tokens refreshed ahead of expiry, for authorized
vehicles whose provider refreshes. Where tokens live, the lock around them and the
refresh itself belong to the vehicle session (workflows.session); this is the step's
start and its ends."""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx

from providers import PermanentError
from settings import Settings
from store.db import Database
from store.models import utcnow
from workflows import steps
from workflows.errors import DomainError
from workflows.locked import locked
from workflows.machine import Status
from workflows.session import AccessLost, VehicleSession
from workflows.steps import Step

__all__ = ["RETRY_REFRESH_AFTER", "refresh", "refresh_exhausted"]

log = logging.getLogger(__name__)

# After a refresh step spent its attempts (the provider down for long), try again then.
RETRY_REFRESH_AFTER = timedelta(minutes=5)


def refresh(
    db: Database,
    settings: Settings,
    vehicle_id: str,
    *,
    transport: httpx.BaseTransport | None = None,
) -> None:
    """The refresh step, due at the token's expiry minus the margin: new tokens
    committed, the next refresh made due. Transient errors propagate (the step is
    retried); a refused grant deauthorizes the vehicle; the service's own request
    refused (its app's credentials gone or wrong) keeps it authorized, the error kept
    for operators, the refresh due again later."""
    vs = VehicleSession(db, settings, vehicle_id, transport=transport)
    try:
        with vs.locked() as v:
            if v is None or v.row.step != Step.refresh:
                return
            refreshes = v.adapter.refreshes
        if not refreshes:  # nothing of the user's to refresh (Enode)
            _end_refresh(db, vehicle_id, again=False)
            return
        vs.renew(ahead=settings.refresh_margin_seconds, step=True)
    except AccessLost:
        return
    except (PermanentError, DomainError) as exc:
        log.error("vehicle %s: token refresh refused: %s", vehicle_id, exc)
        _end_refresh(db, vehicle_id, again=True, error=str(exc))


def refresh_exhausted(db: Database, vehicle_id: str) -> None:
    """The provider kept failing: the vehicle stays authorized (its access is not known
    to be lost), and the refresh comes due again a little later; a call in the meantime
    refreshes first anyway."""
    _end_refresh(db, vehicle_id, again=True)


def _end_refresh(db: Database, vehicle_id: str, *, again: bool, error: str | None = None) -> None:
    """The refresh step ends without new tokens; `again`: due again a little later."""
    with locked(db, vehicle_id) as v:
        if v is not None and v.row.step == Step.refresh:
            steps.clear(v.row)
            if error is not None:
                v.row.last_error = error[:500]
            v.row.refresh_due_at = None
            if again and v.is_(Status.authorized):
                v.row.refresh_due_at = utcnow() + RETRY_REFRESH_AFTER
