"""The steps that talk to a provider, run by workers: make Enode's link session, and
validate an authorization (exchange the code once, read the account, decide).

Plain functions over a database and an adapter; every change under the vehicle's row lock,
the network only between transactions. The code is single use: it is claimed, and the
claim committed, before it is spent; the tokens it buys are committed before anything
else can fail. Transient provider errors propagate to the caller's retry policy;
permanent ones fail the vehicle with their code.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from providers import (
    AccountRef,
    Adapter,
    CodeFlowAdapter,
    EnodeAdapter,
    PermanentError,
    RetryPolicy,
    Tokens,
    adapter_for,
)
from providers.retry import SAVING_SPENT
from settings import Settings
from store.db import Database
from store.models import CatalogueVehicle, ConnectedVehicle, OAuthState, utcnow
from workflows import steps
from workflows.app_tokens import StoredAppTokens
from workflows.clients import credentials_for
from workflows.errors import DomainError, ErrorCode
from workflows.events import record_event
from workflows.machine import Lifecycle, Status
from workflows.states import new_state
from workflows.vehicles import lock

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
    """The link-flow job (Enode): create the provider's link session and hand its URL to
    the vehicle. The service's state rides in the link's redirect URI. Safe to run twice:
    the first URL saved wins."""
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        if vehicle is None or vehicle.status != Status.pending or vehicle.authorization_url:
            return
        adapter = adapter_of(db, session, settings, vehicle, transport)
        assert isinstance(adapter, EnodeAdapter)
        user_id, scope = vehicle.provider_user_id or vehicle.id, list(vehicle.scope)
        session.commit()
    state = secrets.token_urlsafe(32)
    try:
        url = adapter.create_link(
            user_id=user_id,
            redirect_uri=f"{settings.callback_url}?{urlencode({'state': state})}",
            scopes=scope,
        )
    except PermanentError as exc:
        fail(db, vehicle_id, ErrorCode(exc.reason.value))
        return
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        unlinked = vehicle is not None and not vehicle.authorization_url
        if vehicle is not None and unlinked and vehicle.status == Status.pending:
            new_state(session, settings, vehicle, state=state)
            vehicle.authorization_url = url
            vehicle.updated_at = utcnow()
            steps.clear(vehicle)  # now the user has to act
            record_event(session, "connected_vehicle.updated", vehicle)
        session.commit()


def adapter_of(
    db: Database,
    session: Session,
    settings: Settings,
    vehicle: ConnectedVehicle,
    transport: httpx.BaseTransport | None,
) -> Adapter:
    credentials = credentials_for(session, vehicle.client_id, vehicle.provider)
    if credentials is None:
        raise DomainError(ErrorCode.CONNECT_PROVIDER_NOT_ALLOWED, provider=vehicle.provider)
    return adapter_for(
        vehicle.provider,
        credentials,
        timeout=settings.provider_timeout_seconds,
        transport=transport,
        token_cache=StoredAppTokens(db),
        policy=RetryPolicy.of(settings).for_attempt(vehicle.attempts or 0),
    )


def fail(db: Database, vehicle_id: str, error: ErrorCode, *, retryable: bool = False) -> None:
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        if vehicle is not None and vehicle.status == Status.pending:
            Lifecycle(session, vehicle).trigger_event("fail", error=error, retryable=retryable)
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
        scope = list(vehicle.scope)
        if adapter.flow == "link":
            if vehicle.link_completed_at is None:
                return None
            user = AccountRef(user_id=vehicle.provider_user_id or vehicle.id)
            return _Work(adapter, user, scope, make)
        if vehicle.access_token:
            tokens = Tokens(vehicle.access_token, vehicle.refresh_token, vehicle.token_expires_at)
            return _Work(adapter, AccountRef(tokens=tokens), scope, make)
        if vehicle.code_claimed_at is not None or not vehicle.auth_code:
            return None  # another run holds the code, or there is none yet
        code = vehicle.auth_code
        verifier = None
        if isinstance(adapter, CodeFlowAdapter) and adapter.uses_pkce:
            verifier = session.execute(
                select(OAuthState.code_verifier)
                .where(OAuthState.vehicle_id == vehicle_id, OAuthState.code_verifier.is_not(None))
                .order_by(OAuthState.created_at.desc())
                .limit(1)
            ).scalar_one_or_none()
        vehicle.code_claimed_at = utcnow()
        session.commit()
        return _Work(adapter, None, scope, make, code, verifier)


def exchange_code(
    db: Database,
    settings: Settings,
    vehicle_id: str,
    adapter: CodeFlowAdapter,
    code: str,
    code_verifier: str | None = None,
) -> Tokens:
    """Spend the claimed code; commit the tokens before anything else can fail.

    On a transient error the claim is released (the code was not spent, or the provider
    will reject its reuse), and the error goes up for the retry policy."""
    try:
        tokens = adapter.exchange_code(
            code, redirect_uri=settings.callback_url, code_verifier=code_verifier
        )
    except PermanentError:
        raise
    except Exception:
        with db.session() as session:
            vehicle = lock(session, vehicle_id)
            if vehicle is not None and vehicle.access_token is None:
                vehicle.code_claimed_at = None
            session.commit()
        raise
    _save_tokens(db, vehicle_id, tokens)
    return tokens


def _save_tokens(db: Database, vehicle_id: str, tokens: Tokens) -> None:
    """Commit what the spent code bought. The code cannot be spent again, so a database
    that drops the connection right now is waited for (a few seconds), not given up on."""
    tries = SAVING_SPENT.max_attempts
    for attempt in range(1, tries + 1):
        try:
            with db.session() as session:
                vehicle = lock(session, vehicle_id)
                assert vehicle is not None
                vehicle.access_token = tokens.access_token
                vehicle.refresh_token = tokens.refresh_token
                vehicle.token_expires_at = tokens.expires_at
                vehicle.auth_code = None
                session.commit()
                return
        except OperationalError:
            if attempt == tries:
                raise
            time.sleep(SAVING_SPENT.ceiling(attempt))  # no jitter: one waiter, in line


@dataclass(frozen=True)
class AccountCheck:
    """What validation found: an error code, or the vehicle to authorize."""

    error: ErrorCode | None
    provider_vehicle_id: str | None = None
    vin: str | None = None


def validate_account(
    adapter: Adapter, account: AccountRef, *, scope: list[str], make: str
) -> AccountCheck:
    """Exactly one vehicle, every asked-for scope granted, the make the user said."""
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
    work = _begin(db, settings, vehicle_id, transport)
    if work is None:
        return
    try:
        account = work.account
        if account is None:
            assert isinstance(work.adapter, CodeFlowAdapter) and work.code is not None
            tokens = exchange_code(
                db, settings, vehicle_id, work.adapter, work.code, work.code_verifier
            )
            account = AccountRef(tokens=tokens)
        check = validate_account(work.adapter, account, scope=work.scope, make=work.make)
    except PermanentError as exc:
        fail(db, vehicle_id, ErrorCode(exc.reason.value))
        return
    if check.error is not None:
        fail(db, vehicle_id, check.error)
        return
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        if vehicle is not None and vehicle.status == Status.pending:
            Lifecycle(session, vehicle).trigger_event(
                "authorize", vin=check.vin, provider_vehicle_id=check.provider_vehicle_id
            )
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
        tokens = None
        if vehicle.access_token:
            tokens = Tokens(vehicle.access_token, vehicle.refresh_token, vehicle.token_expires_at)
        account = AccountRef(tokens=tokens, user_id=vehicle.provider_user_id)
        provider_vehicle_id = vehicle.provider_vehicle_id
        session.commit()
    with contextlib.suppress(PermanentError):  # gone already (the user revoked it, say)
        adapter.revoke(account, provider_vehicle_id)
    finish_removal(db, vehicle_id)


def finish_removal(db: Database, vehicle_id: str) -> None:
    """`pending_removal` → `removed`; also after the last failed try at the provider: the
    user asked for the removal, the service keeps nothing."""
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        if vehicle is not None and vehicle.status == Status.pending_removal:
            Lifecycle(session, vehicle).trigger_event("complete_removal")
        session.commit()
