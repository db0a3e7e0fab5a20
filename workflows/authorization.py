"""The authorization workflow: create → the user's consent → callback → validation.

Plain functions over a database and an adapter. Each change happens under the vehicle's
row lock and commits with its outbox event; the network is touched only between
transactions. The code is single use: it is claimed, and the claim committed, before it
is spent; the tokens it buys are committed before anything else can fail.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from providers import (
    ADAPTERS,
    AccountRef,
    Adapter,
    CodeFlowAdapter,
    EnodeAdapter,
    PermanentError,
    Provider,
    Scope,
    Tokens,
    adapter_for,
)
from settings import Settings
from store.db import Database
from store.models import CatalogueVehicle, ConnectedVehicle, OAuthState, utcnow
from workflows import steps
from workflows.app_tokens import StoredAppTokens
from workflows.clients import Principal, credentials_for
from workflows.errors import DomainError, ErrorCode
from workflows.events import record_event
from workflows.machine import Lifecycle, Status
from workflows.steps import Step
from workflows.vehicles import lock, owned

__all__ = [
    "CallbackError",
    "CallbackOutcome",
    "create_connected_vehicle",
    "give_up",
    "receive_callback",
    "request_validation",
    "start_link",
    "validate",
]


def _hash_state(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _check_redirect_uri(uri: str | None) -> str | None:
    if uri is None:
        return None
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DomainError(
            ErrorCode.BAD_USER_INPUT,
            message="redirect_uri must be an absolute http(s) URL",
        )
    return uri


def create_connected_vehicle(
    session: Session,
    settings: Settings,
    who: Principal,
    *,
    vehicle_id: str,
    provider: Provider,
    label: str | None,
    redirect_uri: str | None,
    scope: list[Scope] | None,
) -> ConnectedVehicle:
    """A pending vehicle with its authorization URL, bound to a fresh OAuth state."""
    catalogue = session.get(CatalogueVehicle, vehicle_id)
    if catalogue is None:
        raise DomainError(ErrorCode.VEHICLE_NOT_FOUND)
    if provider.value not in catalogue.providers:
        raise DomainError(ErrorCode.CONNECT_PROVIDER_NOT_SUPPORTED, provider=provider.value)
    credentials = credentials_for(session, who.client_id, provider.value)
    if credentials is None or provider not in ADAPTERS:
        raise DomainError(ErrorCode.CONNECT_PROVIDER_NOT_ALLOWED, provider=provider.value)

    scopes = list(dict.fromkeys(scope if scope is not None else list(Scope)))
    vehicle = ConnectedVehicle(
        client_id=who.client_id,
        user_id=who.user_id,
        vehicle_id=vehicle_id,
        provider=provider.value,
        scope=[s.value for s in scopes],
        label=label,
        status=Status.pending.value,
        redirect_uri=_check_redirect_uri(redirect_uri),
    )
    session.add(vehicle)
    session.flush()

    adapter = adapter_for(provider.value, credentials)
    if isinstance(adapter, CodeFlowAdapter):
        # Building the provider's URL is local work: the user can go at once.
        verifier = secrets.token_urlsafe(48) if adapter.uses_pkce else None
        state = _new_state(session, settings, vehicle, code_verifier=verifier)
        vehicle.authorization_url = adapter.authorization_url(
            state=state,
            redirect_uri=settings.callback_url,
            scopes=vehicle.scope,
            code_verifier=verifier,
        )
    else:
        # A link session is made at the provider: a job (start_link) does it.
        vehicle.provider_user_id = vehicle.id  # one provider user per connected vehicle
        steps.schedule(vehicle, Step.start_link)
    record_event(session, "connected_vehicle.created", vehicle)
    session.commit()
    return vehicle


def _new_state(
    session: Session,
    settings: Settings,
    vehicle: ConnectedVehicle,
    *,
    state: str | None = None,
    code_verifier: str | None = None,
) -> str:
    """Bind a random, single-use, expiring state to the vehicle; only its hash is kept."""
    state = state or secrets.token_urlsafe(32)
    session.add(
        OAuthState(
            state_hash=_hash_state(state),
            vehicle_id=vehicle.id,
            client_id=vehicle.client_id,
            expires_at=utcnow() + timedelta(seconds=settings.pending_ttl_seconds),
            code_verifier=code_verifier,
        )
    )
    return state


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
        adapter = _adapter(db, session, settings, vehicle, transport)
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
        _fail(db, vehicle_id, ErrorCode(exc.reason.value))
        return
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        unlinked = vehicle is not None and not vehicle.authorization_url
        if vehicle is not None and unlinked and vehicle.status == Status.pending:
            _new_state(session, settings, vehicle, state=state)
            vehicle.authorization_url = url
            vehicle.updated_at = utcnow()
            steps.clear(vehicle)  # now the user has to act
            record_event(session, "connected_vehicle.updated", vehicle)
        session.commit()


# -- the OAuth callback -----------------------------------------------------------------------


class CallbackError(Exception):
    """A callback that changes nothing: unknown, replayed or expired state, no code."""


@dataclass(frozen=True)
class CallbackOutcome:
    vehicle_id: str
    status: str
    redirect_uri: str | None
    error: ErrorCode | None
    enqueue_validation: bool


def receive_callback(
    session: Session, state: str | None, code: str | None, error: str | None
) -> CallbackOutcome:
    """Spend the state; keep the code for the validation job, or fail on the error."""
    if not state:
        raise CallbackError("the callback carries no state")
    stmt = select(OAuthState).where(OAuthState.state_hash == _hash_state(state)).with_for_update()
    row = session.execute(stmt).scalar_one_or_none()
    if row is None:
        raise CallbackError("unknown state")
    if row.used_at is not None:
        raise CallbackError("this state was already used")
    now = utcnow()
    if row.expires_at < now:
        raise CallbackError("this state has expired")
    vehicle = lock(session, row.vehicle_id)
    if vehicle is None:  # pragma: no cover - the foreign key forbids it
        raise CallbackError("unknown state")
    adapter = ADAPTERS[Provider(vehicle.provider)]
    # A link flow's return carries no code: coming back is the news.
    if adapter.flow == "code" and not code and not error:
        raise CallbackError("the callback carries neither a code nor an error")
    row.used_at = now

    failure: ErrorCode | None = None
    enqueue = False
    if vehicle.status == Status.pending:
        if error:
            failure = ErrorCode(adapter.callback_error(error).value)
            Lifecycle(session, vehicle).trigger_event("fail", error=failure)
        elif adapter.flow == "link":
            if vehicle.link_completed_at is None:
                vehicle.link_completed_at = now
                steps.schedule(vehicle, Step.validate)
                enqueue = True
        elif vehicle.auth_code is None and vehicle.access_token is None:
            vehicle.auth_code = code
            vehicle.code_received_at = now
            steps.schedule(vehicle, Step.validate)
            enqueue = True
    session.commit()
    return CallbackOutcome(vehicle.id, vehicle.status, vehicle.redirect_uri, failure, enqueue)


# -- authorizeConnectedVehicle ------------------------------------------------------------------


def request_validation(
    session: Session, who: Principal, vehicle_id: str, code: str | None
) -> tuple[ConnectedVehicle, bool]:
    """Answer authorizeConnectedVehicle from the vehicle's status; the bool says whether
    the validation job must be enqueued (once: a second call joins the first)."""
    vehicle = owned(session, who, vehicle_id, for_update=True)
    status = Status(vehicle.status)
    if status is Status.authorized:
        session.commit()  # nothing changed; ends the transaction and its lock
        return vehicle, False
    if status is Status.failed:
        session.commit()  # nothing changed; ends the transaction and its lock
        failure = ErrorCode(vehicle.failure_code or ErrorCode.PROVIDER_REJECTED)
        raise DomainError(failure, provider=vehicle.provider)
    if status is not Status.pending:
        session.commit()  # nothing changed; ends the transaction and its lock
        raise DomainError(ErrorCode.CONNECTED_VEHICLE_NOT_PENDING)

    started = (
        vehicle.auth_code
        or vehicle.code_claimed_at
        or vehicle.access_token
        or vehicle.link_completed_at
    )
    if started:
        enqueue = vehicle.step != Step.validate
    elif code and ADAPTERS[Provider(vehicle.provider)].flow == "code":
        vehicle.auth_code = code
        vehicle.code_received_at = utcnow()
        enqueue = True
    else:
        session.commit()  # nothing changed; ends the transaction and its lock
        raise DomainError(ErrorCode.CONNECTED_VEHICLE_FORBIDDEN)
    if enqueue:
        steps.schedule(vehicle, Step.validate)
    session.commit()
    return vehicle, enqueue


# -- the validation job ---------------------------------------------------------------------------


def _adapter(
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
    )


def _fail(db: Database, vehicle_id: str, error: ErrorCode, *, retryable: bool = False) -> None:
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        if vehicle is not None and vehicle.status == Status.pending:
            Lifecycle(session, vehicle).trigger_event("fail", error=error, retryable=retryable)
        session.commit()


@dataclass(frozen=True)
class _Work:
    """What a validation run holds after its first transaction."""

    adapter: Adapter
    account: AccountRef | None  # known already: tokens bought, or a linked user
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
        adapter = _adapter(db, session, settings, vehicle, transport)
        if adapter.flow == "link":
            if vehicle.link_completed_at is None:
                return None
            return _Work(adapter, AccountRef(user_id=vehicle.provider_user_id or vehicle.id))
        if vehicle.access_token:
            tokens = Tokens(vehicle.access_token, vehicle.refresh_token, vehicle.token_expires_at)
            return _Work(adapter, AccountRef(tokens=tokens))
        if vehicle.code_claimed_at is not None or not vehicle.auth_code:
            return None  # another run holds the code, or there is none yet
        code = vehicle.auth_code
        verifier = session.execute(
            select(OAuthState.code_verifier)
            .where(OAuthState.vehicle_id == vehicle_id, OAuthState.code_verifier.is_not(None))
            .order_by(OAuthState.created_at.desc())
            .limit(1)
        ).scalar_one_or_none()
        vehicle.code_claimed_at = utcnow()
        session.commit()
        return _Work(adapter, None, code, verifier)


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
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        assert vehicle is not None
        vehicle.access_token = tokens.access_token
        vehicle.refresh_token = tokens.refresh_token
        vehicle.token_expires_at = tokens.expires_at
        vehicle.auth_code = None
        session.commit()
    return tokens


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
    granted = adapter.granted_scopes(account, ids[0])
    if not set(adapter.provider_scopes(scope)) <= granted:
        return AccountCheck(ErrorCode.SCOPE_NOT_GRANTED)
    info = adapter.read_vehicle(account, ids[0])
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
    concurrently.

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
        with db.session() as session:
            vehicle = session.get(ConnectedVehicle, vehicle_id)
            catalogue = session.get(CatalogueVehicle, vehicle.vehicle_id) if vehicle else None
            if vehicle is None or catalogue is None:
                return
            scope, make = list(vehicle.scope), catalogue.make
        check = validate_account(work.adapter, account, scope=scope, make=make)
    except PermanentError as exc:
        _fail(db, vehicle_id, ErrorCode(exc.reason.value))
        return
    if check.error is not None:
        _fail(db, vehicle_id, check.error)
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
    _fail(db, vehicle_id, ErrorCode.PROVIDER_UNAVAILABLE, retryable=True)
