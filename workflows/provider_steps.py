"""The steps that talk to a provider, run by workers: make the provider's consent link
(a link flow: Enode), validate an authorization (exchange the code once, read the
account, decide), and give the access back on removal. One adapter interface serves
both flows: the workflow asks what the provider does (``returns_code``,
``link_made_at_provider``, ``uses_pkce``, ``refreshes``), never which provider it is.

Plain functions over a database and an adapter; every change under the vehicle's row lock,
the network only between transactions. The code is single use: it is claimed, and the
claim committed, before it is spent; the tokens it buys are committed before anything
else can fail. Transient provider errors propagate to the caller's retry policy;
permanent ones fail the vehicle with their code.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
from dataclasses import dataclass

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from providers import AccountRef, Adapter, PermanentError, RetryableError, Tokens
from settings import Settings
from store.db import Database
from store.models import CatalogueVehicle, OAuthState, utcnow
from workflows import liveness, steps
from workflows.adapters import adapter_of
from workflows.errors import DomainError, ErrorCode
from workflows.events import record_event
from workflows.machine import Lifecycle, Status
from workflows.stages import Stages
from workflows.states import new_state
from workflows.tokens import AccessLost, live_account, refresh_due, save_tokens, tokens_of
from workflows.uninterrupted import uninterrupted
from workflows.vehicles import lock

log = logging.getLogger(__name__)

__all__ = [
    "AccountCheck",
    "exchange_code",
    "fail",
    "finish_removal",
    "give_up",
    "revoke",
    "start_link",
    "validate",
    "validate_account",
]


def start_link(
    db: Database,
    settings: Settings,
    vehicle_id: str,
    *,
    transport: httpx.BaseTransport | None = None,
) -> None:
    """The job of a flow whose consent link is made at the provider (Enode): ask for it
    and hand its URL to the vehicle. Safe to run twice: the first URL saved wins."""
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        if vehicle is None or vehicle.status != Status.pending:
            return
        if not Stages(vehicle).may("link_made"):
            return  # made already
        adapter = adapter_of(db, session, settings, vehicle, transport)
        user_id, scope = vehicle.provider_user_id or vehicle.id, list(vehicle.scope)
        session.commit()
    state = secrets.token_urlsafe(32)
    try:
        url = adapter.start_consent(
            state=state, callback_url=settings.callback_url, scopes=scope, user_id=user_id
        )
    except PermanentError as exc:
        fail(db, vehicle_id, ErrorCode(exc.reason.value))
        return
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        stages = Stages(vehicle) if vehicle and vehicle.status == Status.pending else None
        if vehicle is not None and stages is not None and stages.may("link_made"):
            new_state(session, settings, vehicle, state=state)
            stages.trigger_event("link_made", url=url)
            vehicle.updated_at = utcnow()
            steps.clear(vehicle)  # now the user has to act
            record_event(session, "connected_vehicle.updated", vehicle)
        session.commit()


def fail(db: Database, vehicle_id: str, error: ErrorCode, *, retryable: bool = False) -> None:
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        lifecycle = Lifecycle(session, vehicle) if vehicle is not None else None
        if lifecycle is not None and lifecycle.may("fail"):  # else: decided already
            lifecycle.trigger_event("fail", error=error, retryable=retryable)
        session.commit()


# A catalogue vehicle's make never changes: each process reads it once.
_makes: dict[str, str] = {}


def _make_of(session: Session, catalogue_id: str) -> str:
    make = _makes.get(catalogue_id)
    if make is None:
        row = session.get(CatalogueVehicle, catalogue_id)
        make = row.make if row is not None else ""
        if row is not None:
            _makes[catalogue_id] = make
    return make


@dataclass(frozen=True)
class _Work:
    """What a validation run holds after its first transaction."""

    adapter: Adapter
    account: AccountRef | None  # known already: tokens bought, or a linked user
    scope: list[str]
    make: str
    expected_vin: str | None  # reauthorized: the car it had must come back
    code: str | None = None  # claimed for this run, to spend
    code_verifier: str | None = None


def _begin(
    db: Database, settings: Settings, vehicle_id: str, transport: httpx.BaseTransport | None
) -> _Work | None:
    """Under the row lock: the account to read, or the code claimed for this run.
    None when there is nothing (more) for this run to do."""
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        if vehicle is None or vehicle.status != Status.pending:
            return None
        make = _make_of(session, vehicle.vehicle_id)
        adapter = adapter_of(db, session, settings, vehicle, transport)
        known = (list(vehicle.scope), make, vehicle.vin)
        user_id = vehicle.provider_user_id or vehicle.id
        if not adapter.returns_code:  # the user's return is the news: read as the app
            if vehicle.link_completed_at is None:
                return None
            return _Work(adapter, adapter.account_of(tokens=None, user_id=user_id), *known)
        tokens = tokens_of(vehicle)
        if tokens is not None:
            if not tokens.valid_for(60):  # bought a while ago: refreshed before use
                session.commit()
                return _Work(adapter, None, *known, code=None)
            return _Work(adapter, adapter.account_of(tokens=tokens, user_id=None), *known)
        stages = Stages(vehicle)
        if not stages.may("claim"):
            return None  # another run holds the code, or there is none yet
        code = vehicle.auth_code
        assert code is not None
        verifier = None
        if adapter.uses_pkce:
            verifier = session.execute(
                select(OAuthState.code_verifier)
                .where(OAuthState.vehicle_id == vehicle_id, OAuthState.code_verifier.is_not(None))
                .order_by(OAuthState.created_at.desc())
                .limit(1)
            ).scalar_one_or_none()
        stages.trigger_event("claim", owner=liveness.process())  # committed before it is spent
        session.commit()
        return _Work(adapter, None, *known, code=code, code_verifier=verifier)


def exchange_code(
    db: Database,
    settings: Settings,
    vehicle_id: str,
    adapter: Adapter,
    code: str,
    code_verifier: str | None = None,
) -> Tokens:
    """Spend the claimed code; commit the tokens before anything else can fail. (Run
    with the claim, to its end whatever stops the step: `_claim_and_spend`.)

    A request that never left (a connect error) or was refused before it was done (a
    5xx, a 429) releases the claim, and the error goes up for the retry policy: sending
    the code again is safe. Anything else may have spent it, and it is never sent again:
    an answer lost (a read timeout, a dropped connection, a gateway's 504) or not
    understood is CodeSpent. A killed process leaves its claim to the sweep, which fails
    the vehicle AUTHORIZATION_INTERRUPTED (workflows.liveness)."""
    try:
        tokens = adapter.exchange_code(
            code, redirect_uri=settings.callback_url, code_verifier=code_verifier
        )
    except PermanentError:
        raise
    except RetryableError as exc:
        if exc.answer_lost:
            raise CodeSpent() from exc
        _release(db, vehicle_id)
        raise
    except Exception as exc:  # not foreseen: it may have left all the same
        log.exception("vehicle %s: the code exchange failed unexpectedly", vehicle_id)
        raise CodeSpent() from exc
    save_tokens(db, vehicle_id, tokens)
    return tokens


def _claim_and_spend(
    db: Database, settings: Settings, vehicle_id: str, transport: httpx.BaseTransport | None
) -> tuple[_Work | None, Tokens | None]:
    """The run's first transaction and, when it claimed a code, the code's exchange and
    the commit of its tokens: one piece, run to its end (`uninterrupted`). A step
    stopped between the claim's commit and the request (a connection given back to the
    pool is a moment it can be stopped at) would leave a claim no one spends."""
    work = _begin(db, settings, vehicle_id, transport)
    if work is None or work.account is not None or work.code is None:
        return work, None
    code, verifier = work.code, work.code_verifier
    return work, exchange_code(db, settings, vehicle_id, work.adapter, code, verifier)


class CodeSpent(DomainError):
    """The exchange's answer was lost: the code may be spent, its tokens unknown."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.AUTHORIZATION_INTERRUPTED)


def _release(db: Database, vehicle_id: str) -> None:
    """The claimed code was not spent: the next attempt claims it again."""
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        if vehicle is not None and vehicle.status == Status.pending:
            stages = Stages(vehicle)
            if stages.may("release"):
                stages.trigger_event("release")
        session.commit()


@dataclass(frozen=True)
class AccountCheck:
    """What validation found: an error code, or the vehicle to authorize."""

    error: ErrorCode | None
    provider_vehicle_id: str | None = None
    vin: str | None = None


def validate_account(
    adapter: Adapter,
    account: AccountRef,
    *,
    scope: list[str],
    make: str,
    expected_vin: str | None = None,
) -> AccountCheck:
    """Exactly one vehicle, every asked-for scope granted, the make the user said, and,
    on a re-consent, the very car the vehicle had."""
    ids = adapter.list_vehicle_ids(account)
    if not ids:
        return AccountCheck(ErrorCode.CONNECT_NO_VEHICLE)
    if len(ids) > 1:
        return AccountCheck(ErrorCode.CONNECT_MULTIPLE_VEHICLES_NOT_ALLOWED)
    info, granted = adapter.inspect(account, ids[0])  # the reads at once
    if not set(adapter.provider_scopes(scope)) <= granted:
        return AccountCheck(ErrorCode.SCOPE_NOT_GRANTED)
    if info.make.casefold() != make.casefold():
        return AccountCheck(ErrorCode.CONNECT_PROVIDER_NOT_SUPPORTED)
    if expected_vin and (info.vin or "").casefold() != expected_vin.casefold():
        return AccountCheck(ErrorCode.CONNECTED_VEHICLE_MISMATCH)
    return AccountCheck(None, provider_vehicle_id=info.id, vin=info.vin)


def validate(
    db: Database,
    settings: Settings,
    vehicle_id: str,
    *,
    transport: httpx.BaseTransport | None = None,
) -> None:
    """The validation job: exchange the code (once; a link flow has none), validate the
    account, and move the vehicle to authorized or failed. Safe to run twice or
    concurrently. Three transactions at most: claim (with what validation needs to
    know), save the tokens, decide.

    Transient provider errors propagate (the caller retries); permanent ones fail the
    vehicle with their code."""
    try:
        work, tokens = uninterrupted(
            functools.partial(_claim_and_spend, db, settings, vehicle_id, transport)
        )
        if work is None:
            return
        adapter = work.adapter
        account = work.account
        if tokens is not None:
            account = adapter.account_of(tokens=tokens, user_id=None)
        elif account is None:  # tokens held, about to expire: refreshed first
            account = live_account(db, settings, vehicle_id, adapter, user_id=None)
        check = validate_account(
            adapter, account, scope=work.scope, make=work.make, expected_vin=work.expected_vin
        )
    except AccessLost:
        fail(db, vehicle_id, ErrorCode.ACCESS_REVOKED)
        return
    except CodeSpent:  # the user consents again (reauthorize, or an operator's re-drive)
        log.warning("vehicle %s: the code exchange's answer was lost; not sent again", vehicle_id)
        fail(db, vehicle_id, ErrorCode.AUTHORIZATION_INTERRUPTED, retryable=True)
        return
    except PermanentError as exc:
        fail(db, vehicle_id, ErrorCode(exc.reason.value))
        return
    if check.error is not None:
        fail(db, vehicle_id, check.error)
        return
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        lifecycle = Lifecycle(session, vehicle) if vehicle is not None else None
        if vehicle is not None and lifecycle is not None and lifecycle.may("authorize"):
            lifecycle.trigger_event(
                "authorize", vin=check.vin, provider_vehicle_id=check.provider_vehicle_id
            )
            if adapter.refreshes:  # from now on its tokens are kept valid
                vehicle.refresh_due_at = refresh_due(vehicle.token_expires_at, settings)
        session.commit()


def give_up(db: Database, vehicle_id: str) -> None:
    """After the last retry: fail with PROVIDER_UNAVAILABLE, which may be retried."""
    fail(db, vehicle_id, ErrorCode.PROVIDER_UNAVAILABLE, retryable=True)


def revoke(
    db: Database,
    settings: Settings,
    vehicle_id: str,
    *,
    transport: httpx.BaseTransport | None = None,
) -> None:
    """The removal job: give the access back at the provider, then `removed` (which
    forgets every token). Access already gone at the provider is as good as given back."""
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        if vehicle is None or vehicle.status != Status.pending_removal:
            return
        adapter = adapter_of(db, session, settings, vehicle, transport)
        user_id, provider_vehicle_id = vehicle.provider_user_id, vehicle.provider_vehicle_id
        session.commit()
    # Gone already (the user revoked it, say): as good as given back.
    with contextlib.suppress(PermanentError, AccessLost):
        account = live_account(db, settings, vehicle_id, adapter, user_id=user_id)
        adapter.revoke(account, provider_vehicle_id)
    finish_removal(db, vehicle_id)


def finish_removal(db: Database, vehicle_id: str) -> None:
    """`pending_removal` → `removed`; also after the last failed try at the provider: the
    user asked for the removal, the service keeps nothing."""
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        lifecycle = Lifecycle(session, vehicle) if vehicle is not None else None
        if lifecycle is not None and lifecycle.may("complete_removal"):
            lifecycle.trigger_event("complete_removal")
        session.commit()
