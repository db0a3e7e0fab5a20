"""The steps that talk to a provider, run by workers: make the provider's consent link
(a link flow: Enode), validate an authorization (exchange the code once, read the
account, decide), and give the access back on removal. One adapter interface serves
both flows: the workflow asks what the provider does (``returns_code``,
``link_made_at_provider``, ``uses_pkce``, ``refreshes``), never which provider it is.

Each step reads top to bottom through a vehicle session (workflows.session): every
change under the vehicle's row lock, the network only between transactions. The code is
single use: it is claimed, and the claim committed, before it is spent; the tokens it
buys are committed before anything else can fail. Transient provider errors propagate to
the caller's retry policy; permanent ones fail the vehicle with their code.
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
from store.models import CatalogueVehicle, OAuthState
from workflows import liveness
from workflows.errors import DomainError, ErrorCode
from workflows.locked import fire
from workflows.machine import Stage, Status
from workflows.session import AccessLost, VehicleSession, refresh_due
from workflows.states import new_state
from workflows.steps import Failed, Outcome
from workflows.uninterrupted import uninterrupted

log = logging.getLogger(__name__)

__all__ = [
    "AccountCheck",
    "CodeSpent",
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
) -> Outcome:
    """The job of a flow whose consent link is made at the provider (Enode): ask for it
    and hand its URL to the vehicle. Safe to run twice: the first URL saved wins."""
    vs = VehicleSession(db, settings, vehicle_id, transport=transport)
    with vs.locked(may="link_made") as v:  # (made already: nothing to do)
        if v is None:
            return None
        adapter = v.adapter
        user_id, scope = v.row.provider_user_id or v.row.id, list(v.row.scope)
    state = secrets.token_urlsafe(32)
    try:
        url = adapter.start_consent(
            state=state, callback_url=settings.callback_url, scopes=scope, user_id=user_id
        )
    except PermanentError as exc:
        return fail(db, vehicle_id, ErrorCode(exc.reason.value))
    with vs.locked(may="link_made") as v:
        if v is not None:
            new_state(v.session, settings, v.row, state=state)
            v.fire("link_made", url=url)
    return None


def fail(db: Database, vehicle_id: str, error: ErrorCode, *, retryable: bool = False) -> Outcome:
    """Fail the vehicle unless it was decided already."""
    return _failed(fire(db, vehicle_id, "fail", error=error, retryable=retryable), error)


def _failed(fired: bool, error: ErrorCode) -> Outcome:
    return Failed(error.value) if fired else None


def give_up(db: Database, vehicle_id: str) -> Outcome:
    """After the last retry: fail with PROVIDER_UNAVAILABLE, which may be retried."""
    return fail(db, vehicle_id, ErrorCode.PROVIDER_UNAVAILABLE, retryable=True)


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
    """What a validation run learnt in its first transaction."""

    scope: list[str]
    make: str
    expected_vin: str | None  # reauthorized: the car it had must come back
    code: str | None = None  # claimed for this run, to spend
    code_verifier: str | None = None


def _begin(vs: VehicleSession) -> _Work | None:
    """Under the row lock: what validation must know, and the code claimed for this run
    when there is one to spend. None when there is nothing (more) for this run to do:
    another run holds the code, there is none yet, or the user is not back."""
    with vs.locked(Stage.code_received, Stage.tokens_held, Stage.returned) as v:
        if v is None:
            return None
        row = v.row
        work = _Work(list(row.scope), _make_of(v.session, row.vehicle_id), row.vin)
        if not v.adapter.returns_code or v.tokens() is not None:
            return work  # read the account (as the app, or with the tokens held)
        verifier = None
        if v.adapter.uses_pkce:
            verifier = v.session.execute(
                select(OAuthState.code_verifier)
                .where(OAuthState.vehicle_id == row.id, OAuthState.code_verifier.is_not(None))
                .order_by(OAuthState.created_at.desc())
                .limit(1)
            ).scalar_one_or_none()
        code = row.auth_code
        v.fire("claim", owner=liveness.process())  # committed before it is spent
        return _Work(work.scope, work.make, work.expected_vin, code, verifier)


class CodeSpent(DomainError):
    """The exchange's answer was lost: the code may be spent, its tokens unknown."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.AUTHORIZATION_INTERRUPTED)


def exchange_code(vs: VehicleSession, code: str, code_verifier: str | None = None) -> Tokens:
    """Spend the claimed code; commit the tokens before anything else can fail. (Run
    with the claim, to its end whatever stops the step: `_claim_and_spend`.)

    A request that never left (a connect error) or was refused before it was done (a
    5xx, a 429) releases the claim, and the error goes up for the retry policy: sending
    the code again is safe. Anything else may have spent it, and it is never sent again:
    an answer lost (a read timeout, a dropped connection, a gateway's 504) or not
    understood is CodeSpent. A killed process leaves its claim to the sweep, which fails
    the vehicle AUTHORIZATION_INTERRUPTED (workflows.liveness)."""
    try:
        tokens = vs.adapter.exchange_code(
            code, redirect_uri=vs.settings.callback_url, code_verifier=code_verifier
        )
    except PermanentError:
        raise
    except RetryableError as exc:
        if exc.answer_lost:
            raise CodeSpent() from exc
        vs.fire("release")  # not spent: the next attempt claims it again
        raise
    except Exception as exc:  # not foreseen: it may have left all the same
        log.exception("vehicle %s: the code exchange failed unexpectedly", vs.vehicle_id)
        raise CodeSpent() from exc
    vs.save_tokens(tokens)
    return tokens


def _claim_and_spend(vs: VehicleSession) -> _Work | None:
    """The run's first transaction and, when it claimed a code, the code's exchange and
    the commit of its tokens: one piece, run to its end (`uninterrupted`). A step
    stopped between the claim's commit and the request (a connection given back to the
    pool is a moment it can be stopped at) would leave a claim no one spends."""
    work = _begin(vs)
    if work is not None and work.code is not None:
        exchange_code(vs, work.code, work.code_verifier)
    return work


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
) -> Outcome:
    """The validation job: exchange the code (once; a link flow has none), validate the
    account, and move the vehicle to authorized or failed. Safe to run twice or
    concurrently. Three transactions at most: claim (with what validation needs to
    know), save the tokens, decide.

    Transient provider errors propagate (the caller retries); permanent ones fail the
    vehicle with their code."""
    vs = VehicleSession(db, settings, vehicle_id, transport=transport)
    try:
        work = uninterrupted(functools.partial(_claim_and_spend, vs))
        if work is None:
            return None
        check = vs.call(
            lambda account: validate_account(
                vs.adapter,
                account,
                scope=work.scope,
                make=work.make,
                expected_vin=work.expected_vin,
            )
        )
    except AccessLost:
        return fail(db, vehicle_id, ErrorCode.ACCESS_REVOKED)
    except CodeSpent:  # the user consents again (reauthorize, or an operator's re-drive)
        log.warning("vehicle %s: the code exchange's answer was lost; not sent again", vehicle_id)
        return fail(db, vehicle_id, ErrorCode.AUTHORIZATION_INTERRUPTED, retryable=True)
    except PermanentError as exc:
        return fail(db, vehicle_id, ErrorCode(exc.reason.value))
    if check.error is not None:
        return fail(db, vehicle_id, check.error)
    with vs.locked(may="authorize") as v:
        if v is not None:
            v.fire("authorize", vin=check.vin, provider_vehicle_id=check.provider_vehicle_id)
            if vs.adapter.refreshes:  # from now on its tokens are kept valid
                v.row.refresh_due_at = refresh_due(v.row.token_expires_at, settings)
    return None


def revoke(
    db: Database,
    settings: Settings,
    vehicle_id: str,
    *,
    transport: httpx.BaseTransport | None = None,
) -> Outcome:
    """The removal job: give the access back at the provider, then `removed` (which
    forgets every token). Access already gone at the provider is as good as given back."""
    vs = VehicleSession(db, settings, vehicle_id, transport=transport)
    with vs.locked(Status.pending_removal) as v:
        if v is None:
            return None
        adapter, provider_vehicle_id = v.adapter, v.row.provider_vehicle_id
    with contextlib.suppress(PermanentError, AccessLost):  # gone already: as good as given back
        vs.call(lambda account: adapter.revoke(account, provider_vehicle_id))
    return finish_removal(db, vehicle_id)


def finish_removal(db: Database, vehicle_id: str) -> Outcome:
    """`pending_removal` → `removed`; also after the last failed try at the provider: the
    user asked for the removal, the service keeps nothing."""
    fire(db, vehicle_id, "complete_removal")
    return None
