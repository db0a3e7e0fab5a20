"""The user's provider tokens, kept valid: saved when bought, refreshed ahead of expiry by
the refresh step, refreshed before a call that would go out with an expired one, and
forgotten when the provider refuses them.

Each adapter owns its token lifecycle (``Adapter.ensure_valid``: is it still valid, the
refresh grant, a rotated pair); this module owns where tokens live and the lock around
them. A refresh runs under the vehicle's row lock, so two that race reach the provider
once (the second finds the new pair); the new pair is committed before it is used.

A refresh whose answer was lost (the request may have been processed, its answer never
arrived) is retried like any transient error, with the same refresh token:
- where refresh tokens stay in force (High Mobility), the retry simply works;
- where they are single use (Smartcar, Tesla), the provider may already have spent it:
  it then refuses the retry (``invalid_grant``) and the vehicle is ``deauthorized``
  with ACCESS_REVOKED, like any refused refresh; its user consents again
  (``reauthorizeConnectedVehicle``, same id). The log says the answer was lost.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

import httpx
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from providers import AccountRef, Adapter, PermanentError, Reason, Tokens
from providers.errors import ANSWER_LOST
from providers.retry import SAVING_SPENT
from settings import Settings
from store.db import Database
from store.models import ConnectedVehicle, utcnow
from workflows import steps
from workflows.adapters import adapter_of
from workflows.errors import DomainError, ErrorCode
from workflows.machine import Lifecycle, Status
from workflows.stages import Stages
from workflows.steps import Step
from workflows.uninterrupted import to_the_end
from workflows.vehicles import lock

__all__ = [
    "CALL_MARGIN",
    "AccessLost",
    "live_account",
    "lose_access",
    "refresh",
    "refresh_due",
    "refresh_exhausted",
    "save_tokens",
]

log = logging.getLogger(__name__)

# A call never goes out with a token that expires within this many seconds.
CALL_MARGIN = 60.0
# After a refresh step spent its attempts (the provider down for long), try again then.
RETRY_REFRESH_AFTER = timedelta(minutes=5)
# Statuses in which the service still holds and uses the user's tokens.
_HOLDING = (Status.pending, Status.authorized, Status.pending_removal)


class AccessLost(DomainError):
    """The provider refused the vehicle's tokens for good (the vehicle is deauthorized
    when it was authorized)."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.ACCESS_REVOKED)


def refresh_due(expires_at: datetime | None, settings: Settings) -> datetime | None:
    """When the refresh step comes due: the expiry minus the margin (never before now
    is meaningful: the sweep takes what is past)."""
    if expires_at is None:
        return None
    return expires_at - timedelta(seconds=settings.refresh_margin_seconds)


def tokens_of(vehicle: ConnectedVehicle) -> Tokens | None:
    if not vehicle.access_token:
        return None
    return Tokens(vehicle.access_token, vehicle.refresh_token, vehicle.token_expires_at)


def _write(vehicle: ConnectedVehicle, tokens: Tokens, settings: Settings | None) -> None:
    vehicle.access_token = tokens.access_token
    vehicle.refresh_token = tokens.refresh_token
    vehicle.token_expires_at = tokens.expires_at
    if settings is not None and vehicle.status == Status.authorized:
        vehicle.refresh_due_at = refresh_due(tokens.expires_at, settings)


def save_tokens(
    db: Database, vehicle_id: str, tokens: Tokens, settings: Settings | None = None
) -> None:
    """Commit tokens bought with something single use (a code, a rotating refresh
    token). It cannot be spent again, so a database that drops the connection right now
    is waited for (a few seconds), not given up on."""
    tries = SAVING_SPENT.max_attempts
    for attempt in range(1, tries + 1):
        try:
            with db.session() as session:
                vehicle = lock(session, vehicle_id)
                if vehicle is None or vehicle.status not in _HOLDING:
                    # removed or deauthorized meanwhile: nothing of its access is kept
                    log.warning("vehicle %s: tokens bought after it left; dropped", vehicle_id)
                    return
                stages = Stages(vehicle) if vehicle.status == Status.pending else None
                if stages is not None and stages.may("buy_tokens"):  # a code spent
                    stages.trigger_event("buy_tokens", write=lambda v: _write(v, tokens, settings))
                else:  # a refresh
                    _write(vehicle, tokens, settings)
                session.commit()
                return
        except OperationalError:
            if attempt == tries:
                raise
            time.sleep(SAVING_SPENT.ceiling(attempt))  # no jitter: one waiter, in line


def lose_access(session: Session, vehicle: ConnectedVehicle, error: ErrorCode) -> bool:
    """A vehicle whose access ended: `deauthorized` (its event, its tokens and data
    forgotten) where the machine allows it (from `authorized`); any other status is left
    as it is. The caller commits."""
    lifecycle = Lifecycle(session, vehicle)
    if not lifecycle.may("deauthorize"):
        return False
    lifecycle.trigger_event("deauthorize", error=error)
    return True


@to_the_end  # a refresh token may be single use: the pair it buys is committed
def _renew(
    db: Database,
    settings: Settings,
    vehicle_id: str,
    adapter: Adapter,
    *,
    ahead: float,
    refused: str | None = None,
    step: bool = False,
) -> Tokens | None:
    """Under the row lock: the vehicle's tokens, refreshed first when they expire within
    `ahead` seconds, or when `refused` (an access token the provider just refused) is
    still the one held. `step`: this is the refresh step, which ends here.
    None: the vehicle holds no tokens (any more). Raises AccessLost when the provider
    refuses the refresh; RetryableError propagates (the lock is released)."""
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        if vehicle is None or vehicle.status not in _HOLDING:
            return None
        if step and (vehicle.status != Status.authorized or vehicle.step != Step.refresh):
            return None  # done by another run, or no longer wanted
        tokens = tokens_of(vehicle)
        if tokens is None:
            if step:
                steps.clear(vehicle)
                session.commit()
            return None

        def save(fresh: Tokens) -> None:
            # In the lock's own transaction: committed before anything uses it.
            _write(vehicle, fresh, settings)
            if step:
                steps.clear(vehicle)
            try:
                session.commit()
            except OperationalError:  # the pair is bought: wait for the database
                session.rollback()
                save_tokens(db, vehicle_id, fresh, settings)

        try:
            if refused is not None and refused == tokens.access_token:
                fresh = adapter.refresh(tokens)
                save(fresh)
            else:  # (a refused token another run has replaced since: use the new one)
                fresh = adapter.ensure_valid(tokens, ahead=ahead, save=save)
        except PermanentError as exc:
            if exc.reason is not Reason.ACCESS_REVOKED:
                raise
            # A single-use refresh token whose refresh's answer was lost: it was spent.
            lost_answer = adapter.single_use_refresh and ANSWER_LOST in (vehicle.last_error or "")
            log.warning(
                "vehicle %s: the provider refused the token refresh%s: access lost",
                vehicle_id,
                " (an earlier refresh's answer was lost, so its token was spent)"
                if lost_answer
                else "",
            )
            lose_access(session, vehicle, ErrorCode.ACCESS_REVOKED)
            session.commit()
            raise AccessLost() from exc
        if fresh is tokens and step:  # still valid for the margin: another run refreshed
            steps.clear(vehicle)
            vehicle.refresh_due_at = refresh_due(tokens.expires_at, settings)
            session.commit()
        return fresh


def live_account(
    db: Database,
    settings: Settings,
    vehicle_id: str,
    adapter: Adapter,
    *,
    user_id: str | None,
    refused: AccountRef | None = None,
) -> AccountRef:
    """The vehicle's account to call with: tokens valid for at least CALL_MARGIN more
    (refreshed first if need be: a call never goes out with an expired token), or the
    provider-side user for a provider without user tokens. `refused`: the account whose
    token the provider just refused (401): refreshed unless already replaced."""
    tokens = None
    if adapter.refreshes:
        stale = refused.tokens.access_token if refused and refused.tokens else None
        tokens = _renew(db, settings, vehicle_id, adapter, ahead=CALL_MARGIN, refused=stale)
        if tokens is None:
            raise AccessLost()
    return adapter.account_of(tokens=tokens, user_id=user_id)


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
    try:
        with db.session() as session:
            vehicle = session.get(ConnectedVehicle, vehicle_id)
            if vehicle is None or vehicle.step != Step.refresh:
                return
            adapter = adapter_of(db, session, settings, vehicle, transport)
            session.commit()
        if not adapter.refreshes:  # nothing of the user's to refresh (Enode)
            _end_refresh(db, vehicle_id, again=False)
            return
        margin = settings.refresh_margin_seconds
        _renew(db, settings, vehicle_id, adapter, ahead=margin, step=True)
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
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        if vehicle is not None and vehicle.step == Step.refresh:
            steps.clear(vehicle)
            if error is not None:
                vehicle.last_error = error[:500]
            vehicle.refresh_due_at = None
            if again and vehicle.status == Status.authorized:
                vehicle.refresh_due_at = utcnow() + RETRY_REFRESH_AFTER
        session.commit()
