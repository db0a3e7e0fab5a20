"""A vehicle session: the one way a workflow step touches a vehicle and its provider.

    vs = VehicleSession(db, settings, vehicle_id)
    with vs.locked(Status.pending) as v:       # a transaction, the row lock, the machine
        if v is None: return                   # not there, or not in that state
        v.fire("claim", owner=…)               # the transition and its event; commits
    info = vs.call(lambda account: vs.adapter.inspect(account, car))  # a valid token

- ``locked(*states, may=trigger)`` opens a transaction, takes the row's lock and yields
  the vehicle with its machine, or None when the vehicle is gone, is not in one of
  `states`, or may not fire `may`; the block commits when it ends (rolls back when it
  raises). The network is never touched inside one, but for the refresh below.
- ``fire(trigger, **kw)``: one transaction that fires `trigger` when the machine allows
  it (else nothing: decided already).
- ``call(fn)``: `fn(account)` with tokens valid for ``CALL_MARGIN`` more seconds,
  refreshed first when they must be; a token the provider refuses (401) is refreshed
  once and `fn` tried again. Home Assistant's ``OAuth2Session`` is the model: the
  session owns the token, callers never thread it through.

The user's tokens are kept valid here. Each adapter owns its token lifecycle
(``Adapter.ensure_valid``: still valid?, the refresh grant, a rotated pair); this module
owns where tokens live and the lock around them. A refresh runs under the vehicle's row
lock, so two that race reach the provider once (the second finds the new pair); the new
pair is committed before it is used. A refresh whose answer was lost is retried like
any transient error, with the same refresh token: where refresh tokens stay in force
(High Mobility) the retry works; where they are single use (Smartcar, Tesla) the provider
may refuse it (``invalid_grant``), and the vehicle is ``deauthorized`` with
ACCESS_REVOKED like any refused refresh; the log says the answer was lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TypeVar

import httpx
from sqlalchemy.exc import OperationalError

from providers import AccountRef, Adapter, PermanentError, Reason, Tokens
from providers.errors import ANSWER_LOST
from providers.retry import RetryPolicy
from settings import Settings
from store.db import Database
from store.models import ConnectedVehicle
from workflows import steps
from workflows.adapters import adapter_of
from workflows.errors import DomainError, ErrorCode
from workflows.locked import Locked, fire, locked
from workflows.machine import Stage, Status
from workflows.steps import Step
from workflows.uninterrupted import to_the_end

__all__ = [
    "CALL_MARGIN",
    "SAVING_SPENT",
    "AccessLost",
    "VehicleSession",
    "refresh_due",
    "write_tokens",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

# A call never goes out with a token that expires within this many seconds.
CALL_MARGIN = 60.0
# Tokens bought with a spent code (or a rotating refresh token) are waited for a few
# seconds into the database: what bought them cannot be spent again.
SAVING_SPENT = RetryPolicy(max_attempts=6, base=0.2, cap=3.2, inline_retries=0)


class AccessLost(DomainError):
    """The provider refused the vehicle's tokens for good (the vehicle is deauthorized
    when it was authorized)."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.ACCESS_REVOKED)


def refresh_due(expires_at: datetime | None, settings: Settings) -> datetime | None:
    """When the refresh step comes due: the expiry minus the margin (the sweep takes
    what is past)."""
    if expires_at is None:
        return None
    return expires_at - timedelta(seconds=settings.refresh_margin_seconds)


def write_tokens(vehicle: ConnectedVehicle, tokens: Tokens, settings: Settings) -> None:
    vehicle.access_token = tokens.access_token
    vehicle.refresh_token = tokens.refresh_token
    vehicle.token_expires_at = tokens.expires_at
    if vehicle.status == Status.authorized:  # its next refresh comes due then
        vehicle.refresh_due_at = refresh_due(tokens.expires_at, settings)


class VehicleSession:
    """What one run of a step knows of its vehicle: the database, the provider's adapter
    (made in the run's first ``locked`` block), and the tokens it last saw.
    `attempts`: failed attempts before this one (default: the vehicle's step's), which
    decide how much the adapter re-tries inline."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        vehicle_id: str,
        *,
        transport: httpx.BaseTransport | None = None,
        attempts: int | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.vehicle_id = vehicle_id
        self.transport = transport
        self.attempts = attempts
        self.tokens: Tokens | None = None
        # bought by this run (a code spent, a refresh): used as they come, whatever
        # their lifetime
        self.bought = False
        self._adapter: Adapter | None = None
        self._user_id: str | None = None

    # -- transactions ------------------------------------------------------------------------

    def locked(
        self, *states: Status | Stage, may: str | None = None
    ) -> AbstractContextManager[Locked | None]:
        """The vehicle under its lock (module ``locked``), known to this session."""
        return locked(self.db, self.vehicle_id, *states, may=may, owner=self)

    def fire(self, trigger: str, **kwargs: object) -> bool:
        """Fire `trigger` in a transaction of its own when the machine allows it; False
        when it does not (decided already, say)."""
        return fire(self.db, self.vehicle_id, trigger, **kwargs)

    # -- the provider ------------------------------------------------------------------------

    def adapter_for(self, v: Locked) -> Adapter:
        if self._adapter is None:
            row = v.row
            self._adapter = adapter_of(
                self.db, v.session, self.settings, row, self.transport, attempts=self.attempts
            )
            # whose account it reads: the tokens' user, or the provider-side user of a
            # link flow (read as the app)
            self._user_id = row.provider_user_id or (None if self._adapter.returns_code else row.id)
        return self._adapter

    @property
    def adapter(self) -> Adapter:
        assert self._adapter is not None, "made in the run's first locked block"
        return self._adapter

    def account(self, *, refused: AccountRef | None = None) -> AccountRef:
        """The account to call with: tokens valid for at least CALL_MARGIN more (known
        from this run, or refreshed first), or the provider-side user of a provider
        without user tokens. `refused`: the account whose token the provider just
        refused (401): refreshed unless another run replaced it already."""
        adapter = self.adapter
        tokens = None
        if adapter.refreshes:
            held = self.tokens
            if (
                refused is None
                and held is not None
                and (self.bought or held.valid_for(CALL_MARGIN))
            ):
                tokens = held
            else:
                stale = refused.tokens.access_token if refused and refused.tokens else None
                tokens = self.renew(ahead=CALL_MARGIN, refused=stale)
                if tokens is None:
                    raise AccessLost()
        return adapter.account_of(tokens=tokens, user_id=self._user_id)

    def call(self, fn: Callable[[AccountRef], T]) -> T:
        """`fn(account)` with a valid token; a token refused (401) is refreshed once,
        and `fn` tried again with the new one."""
        account = self.account()
        try:
            return fn(account)
        except PermanentError as exc:
            if exc.reason is not Reason.ACCESS_REVOKED or not self.adapter.refreshes:
                raise
        return fn(self.account(refused=account))

    # -- tokens -----------------------------------------------------------------------------

    def save_tokens(self, tokens: Tokens) -> None:
        """Commit tokens bought with something single use (a code, a rotating refresh
        token). It cannot be spent again, so a database that drops the connection right
        now is waited for (a few seconds), not given up on."""
        tries = SAVING_SPENT.max_attempts
        for attempt in range(1, tries + 1):
            try:
                with self.locked() as v:
                    if v is None or not v.machine.holds_access():
                        # removed or deauthorized meanwhile: nothing of its access is kept
                        log.warning(
                            "vehicle %s: tokens bought after it left; dropped", self.vehicle_id
                        )
                        return
                    if v.may("buy_tokens"):  # a code spent
                        v.fire("buy_tokens", write=lambda r: write_tokens(r, tokens, self.settings))
                    else:  # a refresh
                        write_tokens(v.row, tokens, self.settings)
                self.tokens, self.bought = tokens, True
                return
            except OperationalError:
                if attempt == tries:
                    raise
                time.sleep(SAVING_SPENT.ceiling(attempt))  # no jitter: one waiter, in line

    @to_the_end  # a refresh token may be single use: the pair it buys is committed
    def renew(
        self, *, ahead: float, refused: str | None = None, step: bool = False
    ) -> Tokens | None:
        """Under the row lock: the vehicle's tokens, refreshed first when they expire
        within `ahead` seconds, or when `refused` (an access token the provider just
        refused) is still the one held. `step`: this is the refresh step, which ends
        here. None: the vehicle holds no tokens (any more). Raises AccessLost when the
        provider refuses the refresh; RetryableError propagates (the lock is released)."""
        with self.locked() as v:
            if v is None or not v.machine.holds_access():
                return None
            if step and not (v.is_(Status.authorized) and v.row.step == Step.refresh):
                return None  # done by another run, or no longer wanted
            tokens = v.tokens()
            if tokens is None:
                if step:
                    steps.clear(v.row)
                return None
            adapter = v.adapter

            def save(fresh: Tokens) -> None:
                # In the lock's own transaction: committed before anything uses it.
                write_tokens(v.row, fresh, self.settings)
                if step:
                    steps.clear(v.row)
                try:
                    v.session.commit()
                except OperationalError:  # the pair is bought: wait for the database
                    v.session.rollback()
                    self.save_tokens(fresh)

            try:
                if refused is not None and refused == tokens.access_token:
                    fresh = adapter.refresh(tokens)
                    save(fresh)
                else:  # (a refused token another run has replaced since: use the new one)
                    fresh = adapter.ensure_valid(tokens, ahead=ahead, save=save)
            except PermanentError as exc:
                if exc.reason is not Reason.ACCESS_REVOKED:
                    raise
                self._refused(v, adapter)
                v.session.commit()
                raise AccessLost() from exc
            if fresh is tokens and step:  # still valid for the margin: another run refreshed
                steps.clear(v.row)
                v.row.refresh_due_at = refresh_due(tokens.expires_at, self.settings)
            self.tokens, self.bought = fresh, fresh is not tokens
            return fresh

    def _refused(self, v: Locked, adapter: Adapter) -> None:
        """The provider refused the refresh: the access is lost (deauthorized, when
        authorized; a pending vehicle fails in its step)."""
        # A single-use refresh token whose refresh's answer was lost: it was spent.
        lost_answer = adapter.single_use_refresh and ANSWER_LOST in (v.row.last_error or "")
        log.warning(
            "vehicle %s: the provider refused the token refresh%s: access lost",
            self.vehicle_id,
            " (an earlier refresh's answer was lost, so its token was spent)"
            if lost_answer
            else "",
        )
        v.machine.fire_if("deauthorize", error=ErrorCode.ACCESS_REVOKED)
