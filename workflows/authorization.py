"""The authorization workflow: create → the user's consent → callback → validation.

Plain functions over a database and an adapter. Each change happens under the vehicle's
row lock and commits with its outbox event; the network is touched only between
transactions. The code is single use: it is claimed, and the claim committed, before it
is spent; the tokens it buys are committed before anything else can fail.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from providers import ADAPTERS, Adapter, Provider, Scope, adapter_for
from settings import Settings
from store.models import CatalogueVehicle, ConnectedVehicle, OAuthState, utcnow
from workflows import steps
from workflows.clients import check_redirect_uri
from workflows.errors import DomainError, ErrorCode
from workflows.events import record_event
from workflows.machine import IllegalTransition, Lifecycle, Stage, Status
from workflows.provider_credentials import credentials_for
from workflows.states import hash_state, new_state, retire_states
from workflows.steps import Step
from workflows.user_tokens import Principal
from workflows.vehicles import LABEL_MAX, checked_text, lock, owned

__all__ = [
    "CallbackError",
    "CallbackOutcome",
    "NotRedrivable",
    "create_connected_vehicle",
    "reauthorize_connected_vehicle",
    "receive_callback",
    "redrive",
    "remove_connected_vehicle",
    "request_validation",
]


def _check_redirect_uri(session: Session, client_id: str, uri: str | None) -> str | None:
    """A page the client registered (exactly), or BAD_USER_INPUT: no open redirect."""
    return check_redirect_uri(session, client_id, checked_text(uri, "redirect_uri", 1000))


def _scopes(scope: list[Scope] | None, default: list[Scope]) -> list[Scope]:
    """The scopes asked for, each once; left out, `default`. An empty list asks for no
    data at all, which no client means: BAD_USER_INPUT rather than a vehicle that can
    read nothing (issue 17)."""
    if scope is None:
        return default
    if not scope:
        raise DomainError(
            ErrorCode.BAD_USER_INPUT,
            message="scope must name at least one ConnectScope (leave it out for the default)",
        )
    return list(dict.fromkeys(scope))


def _start_consent(
    session: Session, settings: Settings, vehicle: ConnectedVehicle, adapter: Adapter
) -> None:
    """Send the user to the provider: a fresh state and the authorization URL, built
    here (no network), or, where the provider makes the link, a job that asks for it."""
    if adapter.link_made_at_provider:
        vehicle.authorization_url = None
        steps.schedule(vehicle, Step.start_link)  # enqueued on commit
        return
    verifier = secrets.token_urlsafe(48) if adapter.uses_pkce else None
    state = new_state(session, settings, vehicle, code_verifier=verifier)
    vehicle.authorization_url = adapter.start_consent(
        state=state,
        callback_url=settings.callback_url,
        scopes=vehicle.scope,
        user_id=vehicle.provider_user_id or vehicle.id,
        code_verifier=verifier,
    )


def _adapter(session: Session, vehicle: ConnectedVehicle) -> Adapter:
    credentials = credentials_for(session, vehicle.client_id, vehicle.provider)
    if credentials is None:
        raise DomainError(ErrorCode.CONNECT_PROVIDER_NOT_ALLOWED, provider=vehicle.provider)
    return adapter_for(vehicle.provider, credentials)


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
    label = checked_text(label, "label", LABEL_MAX)
    redirect_uri = _check_redirect_uri(session, who.client_id, redirect_uri)
    catalogue = session.get(CatalogueVehicle, checked_text(vehicle_id, "vehicle_id", 100))
    if catalogue is None:
        raise DomainError(ErrorCode.VEHICLE_NOT_FOUND)
    if provider.value not in catalogue.providers:
        raise DomainError(ErrorCode.CONNECT_PROVIDER_NOT_SUPPORTED, provider=provider.value)
    credentials = credentials_for(session, who.client_id, provider.value)
    if credentials is None or provider not in ADAPTERS:
        raise DomainError(ErrorCode.CONNECT_PROVIDER_NOT_ALLOWED, provider=provider.value)

    scopes = _scopes(scope, list(Scope))
    vehicle = ConnectedVehicle(
        client_id=who.client_id,
        user_id=who.user_id,
        vehicle_id=vehicle_id,
        provider=provider.value,
        scope=[s.value for s in scopes],
        label=label,
        status=Status.pending.value,
        redirect_uri=redirect_uri,
        pending_since=utcnow(),
    )
    session.add(vehicle)
    session.flush()

    adapter = adapter_for(provider.value, credentials)
    if not adapter.returns_code:  # read as the app: one provider user per vehicle
        vehicle.provider_user_id = vehicle.id
    _start_consent(session, settings, vehicle, adapter)
    record_event(session, "connected_vehicle.created", vehicle)
    session.commit()
    return vehicle


# -- the OAuth callback -----------------------------------------------------------------------


class CallbackError(Exception):
    """A callback that changes nothing: unknown, replayed or expired state, no code."""


@dataclass(frozen=True)
class CallbackOutcome:
    vehicle_id: str
    status: str
    redirect_uri: str | None
    error: ErrorCode | None


def receive_callback(
    session: Session,
    state: str | None,
    code: str | None,
    error: str | None,
    *,
    resumed: bool = False,
) -> CallbackOutcome:
    """Spend the state; keep the code for the validation job, or fail on the error.

    `resumed`: this same request's earlier try lost its connection while committing, so
    the state may be spent by that very try; a spent state then answers the vehicle as
    it stands (instead of "already used"), and the user's consent is not lost to a blip."""
    if not state:
        raise CallbackError("the callback carries no state")
    stmt = select(OAuthState).where(OAuthState.state_hash == hash_state(state)).with_for_update()
    row = session.execute(stmt).scalar_one_or_none()
    if row is None:
        raise CallbackError("unknown state")
    if row.used_at is not None and not resumed:
        raise CallbackError("this state was already used")
    now = utcnow()
    if row.expires_at < now and row.used_at is None:
        raise CallbackError("this state has expired")
    vehicle = lock(session, row.vehicle_id)
    if vehicle is None:  # pragma: no cover - the foreign key forbids it
        raise CallbackError("unknown state")
    if row.used_at is not None:  # resumed: spent by this request's earlier try
        session.commit()  # nothing changed; ends the transaction and its locks
        failed = vehicle.failure_code if Lifecycle(None, vehicle).is_(Status.failed) else None
        return CallbackOutcome(
            vehicle.id,
            vehicle.status,
            vehicle.redirect_uri,
            ErrorCode(failed) if failed and error else None,
        )
    adapter = ADAPTERS[Provider(vehicle.provider)]
    # A link flow's return carries no code: coming back is the news.
    if adapter.returns_code and not code and not error:
        raise CallbackError("the callback carries neither a code nor an error")
    row.used_at = now

    machine, failure = Lifecycle(session, vehicle), None
    if error:  # the user refused, or the provider failed the consent
        refused = ErrorCode(adapter.callback_error(error).value)
        failure = refused if machine.fire_if("fail", error=refused) else None
    elif machine.fire_if("receive_code" if adapter.returns_code else "come_back", code=code):
        steps.schedule(vehicle, Step.validate)  # enqueued on commit
    session.commit()
    return CallbackOutcome(vehicle.id, vehicle.status, vehicle.redirect_uri, failure)


# -- authorizeConnectedVehicle ------------------------------------------------------------------


def request_validation(
    session: Session, who: Principal, vehicle_id: str, code: str | None
) -> ConnectedVehicle:
    """Answer authorizeConnectedVehicle from the vehicle's status; the validation job is
    scheduled (enqueued on commit) once: a second call joins the first."""
    vehicle = owned(session, who, vehicle_id, for_update=True)
    machine = Lifecycle(session, vehicle)
    if not machine.is_(Status.pending):
        session.commit()  # nothing changed; ends the transaction and its lock
        if machine.is_(Status.authorized):
            return vehicle
        if machine.is_(Status.failed):
            failure = ErrorCode(vehicle.failure_code or ErrorCode.PROVIDER_REJECTED)
            raise DomainError(failure, provider=vehicle.provider)
        raise DomainError(ErrorCode.CONNECTED_VEHICLE_NOT_PENDING)
    if machine.is_(Stage.linking, Stage.awaiting_user):  # not back: the code comes here
        returns_code = ADAPTERS[Provider(vehicle.provider)].returns_code
        if not (code and returns_code and machine.fire_if("receive_code", code=code)):
            session.commit()  # nothing changed; ends the transaction and its lock
            raise DomainError(ErrorCode.CONNECTED_VEHICLE_FORBIDDEN)
    if vehicle.step != Step.validate:  # (a second call joins the first)
        steps.schedule(vehicle, Step.validate)
    session.commit()
    return vehicle


# -- removeConnectedVehicle ----------------------------------------------------------------------


def remove_connected_vehicle(session: Session, who: Principal, vehicle_id: str) -> ConnectedVehicle:
    """An authorized vehicle goes to `pending_removal` (a job gives the access back at the
    provider, then `removed`); one that never was, or no longer is, is `removed` at once.
    Asking again is harmless."""
    vehicle = owned(session, who, vehicle_id, for_update=True)
    machine = Lifecycle(session, vehicle)  # its table says which way, if any
    if machine.fire_if("request_removal"):
        steps.schedule(vehicle, Step.revoke)
    else:
        machine.fire_if("remove")
    session.commit()
    return vehicle


# -- operators ------------------------------------------------------------------------------


class NotRedrivable(IllegalTransition):
    """A re-drive refused, in words an operator acts on. `skip`: nothing to do (the
    vehicle is no longer failed), as opposed to refused (not retryable, without force)."""

    def __init__(self, vehicle: ConnectedVehicle) -> None:
        super().__init__("retry", vehicle.status)
        self.skip = vehicle.status != Status.failed
        if self.skip:
            since = vehicle.updated_at.strftime("%Y-%m-%d %H:%M UTC")
            words = f"no longer failed: {vehicle.status} since {since}"
        else:
            words = f"not retryable ({vehicle.failure_code}): re-drive with force"
        self.message = words
        self.args = (words,)


def redrive(
    session: Session,
    settings: Settings,
    vehicle_id: str,
    *,
    force: bool = False,
    commit: bool = True,
) -> ConnectedVehicle:
    """Take a failed vehicle back to `pending` and start over from what it has: validate
        again when it holds tokens (or a completed link), make a new link (Enode), or give it
        a new authorization URL for its user. Only a retryable failure, unless `force` (an
        operator's decision). Its step, if any, is enqueued when it commits (`commit`: here;
    else the caller's, with what else it writes)."""
    vehicle = lock(session, vehicle_id)
    if vehicle is None:
        raise DomainError(ErrorCode.CONNECTED_VEHICLE_NOT_FOUND)
    lifecycle = Lifecycle(session, vehicle)
    if not lifecycle.may("retry") or not (force or vehicle.failure_retryable):
        raise NotRedrivable(vehicle)
    lifecycle.trigger_event("retry", operator=force)
    if vehicle.access_token or vehicle.link_completed_at:
        steps.schedule(vehicle, Step.validate)
    else:
        retire_states(session, vehicle)
        _start_consent(session, settings, vehicle, _adapter(session, vehicle))
    if commit:
        session.commit()
    return vehicle


# -- reauthorizeConnectedVehicle -------------------------------------------------------------


def reauthorize_connected_vehicle(
    session: Session,
    settings: Settings,
    who: Principal,
    vehicle_id: str,
    *,
    redirect_uri: str | None,
    scope: list[Scope] | None,
) -> ConnectedVehicle:
    """A deauthorized or failed vehicle goes back to `pending`, same id, with a new
    consent (its scope by default its own); validation then requires the car it had.
    Any other status is ILLEGAL_TRANSITION (the machine's table says), nothing changed."""
    vehicle = owned(session, who, vehicle_id, for_update=True)
    adapter = _adapter(session, vehicle)
    redirect = _check_redirect_uri(session, who.client_id, redirect_uri)
    scopes = None if scope is None else _scopes(scope, [])  # checked before any change
    Lifecycle(session, vehicle).trigger_event("reauthorize")
    if scopes is not None:
        vehicle.scope = [s.value for s in scopes]
    if redirect is not None:
        vehicle.redirect_uri = redirect
    retire_states(session, vehicle)
    _start_consent(session, settings, vehicle, adapter)
    session.commit()
    return vehicle
