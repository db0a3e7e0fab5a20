"""What every adapter offers (:class:`Adapter`): how its consent works, the code it
exchanges, the user's tokens it keeps valid, the car's data and the account reads that
validation makes, and the provider's webhooks it reads. The values it trades in are in
``providers.values``; how it sends its requests is ``providers.plumbing``. The OAuth 2
code flow that Smartcar, Tesla and High Mobility specialize is ``providers.code_flow``;
Enode's link flow is its own (``providers.enode``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

from providers.data import VehicleData
from providers.errors import Reason
from providers.http import concurrently
from providers.names import Provider, Scope
from providers.plumbing import HttpPlumbing
from providers.values import AccountRef, Tokens, VehicleInfo
from providers.webhooks import ProviderEvent

__all__ = ["Adapter"]


class Adapter(HttpPlumbing):
    """The surface the domain uses. A provider sets its names and implements the reads;
    how it is built and how it sends are :class:`HttpPlumbing`'s."""

    provider: ClassVar[Provider]
    flow: ClassVar[Literal["code", "link"]]  # for people; the workflow reads the flags below
    api_url: ClassVar[str]
    # How consent works, as the workflow asks it (one interface for both flows):
    # - the authorization URL is made by a call to the provider (a job), not built here;
    link_made_at_provider: ClassVar[bool] = False
    # - the user comes back with a single-use code to exchange for the user's tokens
    #   (else: coming back is the news, and the account is read with the app's token);
    returns_code: ClassVar[bool] = False
    # - the authorization URL carries a PKCE challenge whose verifier the exchange sends;
    uses_pkce: ClassVar[bool] = False
    # - the user's tokens expire and are refreshed (a refresh step keeps them valid);
    refreshes: ClassVar[bool] = False
    # - a refresh token is single use: a refresh whose answer was lost cannot be redone.
    single_use_refresh: ClassVar[bool] = False
    # The header that carries the provider's webhook signature; None: no webhooks.
    webhook_header: ClassVar[str | None] = None
    # Scopes the service always asks for, to validate the account (VIN, make).
    validation_scopes: ClassVar[tuple[str, ...]] = ()
    scope_map: ClassVar[dict[Scope, tuple[str, ...]]] = {}

    def provider_scopes(self, scopes: Sequence[str]) -> list[str]:
        """The provider's scope strings for ours, plus those validation needs."""
        out: list[str] = list(self.validation_scopes)
        for scope in scopes:
            for name in self.scope_map.get(Scope(scope), ()):
                if name not in out:
                    out.append(name)
        return out

    @classmethod
    def callback_error(cls, error: str) -> Reason:
        """The reason for the ``error`` parameter of the provider's redirect back."""
        return Reason.AUTHORIZATION_DENIED

    # -- consent ------------------------------------------------------------------------------

    def start_consent(
        self,
        *,
        state: str,
        callback_url: str,
        scopes: Sequence[str],
        user_id: str,
        code_verifier: str | None = None,
    ) -> str:
        """The URL to send the user to. A code flow builds it here (no network); a link
        flow (``link_made_at_provider``) asks the provider for it, so a job calls this."""
        raise NotImplementedError

    def exchange_code(
        self, code: str, *, redirect_uri: str, code_verifier: str | None = None
    ) -> Tokens:
        """Spend a single-use code (``returns_code`` flows only)."""
        raise NotImplementedError(f"{self.provider} returns no code")

    def account_of(self, *, tokens: Tokens | None, user_id: str | None) -> AccountRef:
        """Whose account a connected vehicle reads: its tokens (code flow) or its
        provider-side user (link flow)."""
        return AccountRef(tokens=tokens, user_id=user_id)

    # -- the user's tokens --------------------------------------------------------------------

    def refresh(self, tokens: Tokens) -> Tokens:
        """New tokens for `tokens` (``refreshes`` flows only). A refused refresh
        (``invalid_grant``: consent revoked, the refresh token spent or expired) is
        PermanentError(ACCESS_REVOKED)."""
        raise NotImplementedError(f"{self.provider} has no user tokens to refresh")

    def ensure_valid(
        self, tokens: Tokens, *, ahead: float, save: Callable[[Tokens], None]
    ) -> Tokens:
        """Tokens valid for at least `ahead` seconds more: `tokens` themselves, or a
        refreshed pair, handed to `save` (which commits it) before it is returned and
        used. The caller holds the vehicle's row lock: one refresh at a time."""
        if not self.refreshes or tokens.valid_for(ahead):
            return tokens
        fresh = self.refresh(tokens)
        save(fresh)
        return fresh

    # -- the car's data -----------------------------------------------------------------------

    def read_data(self, account: AccountRef, vehicle_id: str, parts: set[str]) -> VehicleData:
        """The car's live data: the `parts` asked for (``providers.data.PARTS_OF_SCOPE``),
        in the service's units. A part answered in a shape this adapter cannot read is
        None, with a line in ``problems``; a car that cannot answer now (asleep) is a
        RetryableError; lost access is PermanentError(ACCESS_REVOKED)."""
        raise NotImplementedError

    # -- webhooks (class methods: no credentials needed to read them) ---------------------------

    @classmethod
    def verify_webhook(cls, secret: str, raw: bytes, header: str | None) -> bool:
        """Whether `header` signs the raw body `raw` with `secret` (constant time)."""
        return False

    @classmethod
    def webhook_challenge(cls, body: Any) -> str | None:
        """The challenge of a verification request (Smartcar's VERIFY), else None."""
        return None

    @classmethod
    def answer_challenge(cls, secret: str, challenge: str) -> str:
        raise NotImplementedError

    @classmethod
    def delivery_key(cls, raw: bytes, body: Any) -> str:
        """What identifies a delivery, so that a replay is stored once: the provider's
        own id, or the body's SHA-256."""
        return hashlib.sha256(raw).hexdigest()

    @classmethod
    def is_delivery(cls, body: Any) -> bool:
        """Whether a verified body has the shape of this provider's deliveries (a JSON
        object by default): anything else is refused, and stored nowhere."""
        return isinstance(body, dict)

    @classmethod
    def parse_webhook(cls, body: Any) -> list[ProviderEvent]:
        """What a verified delivery tells, in the domain's words."""
        return []

    # -- account reads, for validation ---------------------------------------------------

    def list_vehicle_ids(self, account: AccountRef) -> list[str]:
        raise NotImplementedError

    def read_vehicle(self, account: AccountRef, vehicle_id: str) -> VehicleInfo:
        raise NotImplementedError

    def granted_scopes(self, account: AccountRef, vehicle_id: str) -> set[str]:
        raise NotImplementedError

    def inspect(self, account: AccountRef, vehicle_id: str) -> tuple[VehicleInfo, set[str]]:
        """The vehicle and the scopes granted for it, read concurrently (a provider that
        answers both in one call overrides this)."""
        info, granted = concurrently(
            lambda: self.read_vehicle(account, vehicle_id),
            lambda: self.granted_scopes(account, vehicle_id),
        )
        assert isinstance(info, VehicleInfo) and isinstance(granted, set)
        return info, granted

    def revoke(self, account: AccountRef, vehicle_id: str | None) -> bool:
        """Give the access back at the provider. False: the provider has no way to (the
        service then just forgets the tokens)."""
        return False
