"""The error codes of SPEC §3, with their messages and the HTTP status each stands for."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DomainError", "ErrorCode"]


class ErrorCode(StrEnum):
    AUTH_CODE_INVALID = "AUTH_CODE_INVALID"
    AUTH_TOKEN_EXPIRED = "AUTH_TOKEN_EXPIRED"
    AUTH_TOKEN_INVALID = "AUTH_TOKEN_INVALID"
    CONNECT_MULTIPLE_VEHICLES_NOT_ALLOWED = "CONNECT_MULTIPLE_VEHICLES_NOT_ALLOWED"
    CONNECT_PROVIDER_NOT_ALLOWED = "CONNECT_PROVIDER_NOT_ALLOWED"
    CONNECT_PROVIDER_NOT_SUPPORTED = "CONNECT_PROVIDER_NOT_SUPPORTED"
    CONNECT_NO_VEHICLE = "CONNECT_NO_VEHICLE"
    CONNECTED_VEHICLE_FORBIDDEN = "CONNECTED_VEHICLE_FORBIDDEN"
    CONNECTED_VEHICLE_NOT_PENDING = "CONNECTED_VEHICLE_NOT_PENDING"
    CONNECTED_VEHICLE_NOT_FOUND = "CONNECTED_VEHICLE_NOT_FOUND"
    VEHICLE_NOT_FOUND = "VEHICLE_NOT_FOUND"
    AUTHORIZATION_DENIED = "AUTHORIZATION_DENIED"
    AUTHORIZATION_EXPIRED = "AUTHORIZATION_EXPIRED"
    AUTHORIZATION_INTERRUPTED = "AUTHORIZATION_INTERRUPTED"
    SCOPE_NOT_GRANTED = "SCOPE_NOT_GRANTED"
    ACCESS_REVOKED = "ACCESS_REVOKED"
    CONNECTED_VEHICLE_MISMATCH = "CONNECTED_VEHICLE_MISMATCH"
    PROVIDER_REJECTED = "PROVIDER_REJECTED"
    PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    ILLEGAL_TRANSITION = "ILLEGAL_TRANSITION"
    NOT_ALLOWED = "NOT_ALLOWED"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    CONNECTED_VEHICLE_UNREADABLE = "CONNECTED_VEHICLE_UNREADABLE"

    @property
    def retryable(self) -> bool:
        """Asking again, unchanged, may well succeed: the answer was a passing state."""
        return self in _RETRYABLE

    @property
    def status(self) -> int:
        return _TABLE[self][1]

    def message(self, provider: str | None = None) -> str:
        return _TABLE[self][0].replace("$PROVIDER", provider or "unknown")


_TABLE: dict[ErrorCode, tuple[str, int]] = {
    ErrorCode.AUTH_CODE_INVALID: ("The provided auth code is not valid", 400),
    ErrorCode.AUTH_TOKEN_EXPIRED: ("The token you provided is expired", 401),
    ErrorCode.AUTH_TOKEN_INVALID: ("The token you provided is invalid", 401),
    ErrorCode.CONNECT_MULTIPLE_VEHICLES_NOT_ALLOWED: (
        (
            "There seem to be more than 1 vehicle on the vendor account. "
            "This is currently unsupported."
        ),
        422,
    ),
    ErrorCode.CONNECT_PROVIDER_NOT_ALLOWED: (
        (
            "The Connect provider $PROVIDER is not configured for your client id. "
            "Please contact customer support to enable it!"
        ),
        403,
    ),
    ErrorCode.CONNECT_PROVIDER_NOT_SUPPORTED: (
        "The provider you tried to use ($PROVIDER) cannot be used for this vehicle",
        422,
    ),
    ErrorCode.CONNECT_NO_VEHICLE: ("No vehicle was found on the vendor account.", 422),
    ErrorCode.CONNECTED_VEHICLE_FORBIDDEN: (
        (
            "The vehicle does not seem to be authorized yet. To complete this action, "
            "first complete the authorization flow."
        ),
        403,
    ),
    ErrorCode.CONNECTED_VEHICLE_NOT_PENDING: (
        "The connected vehicle you are trying to authorize does not have status pending",
        409,
    ),
    ErrorCode.CONNECTED_VEHICLE_NOT_FOUND: ("The connected vehicle was not found", 404),
    ErrorCode.VEHICLE_NOT_FOUND: ("The vehicle was not found in the catalogue", 404),
    ErrorCode.AUTHORIZATION_DENIED: (
        "The user did not grant access at the provider",
        403,
    ),
    ErrorCode.AUTHORIZATION_EXPIRED: (
        "The authorization was not completed in time. Start a new one.",
        409,
    ),
    ErrorCode.AUTHORIZATION_INTERRUPTED: (
        (
            "The provider's answer was lost after the authorization code was spent. "
            "Ask the user to consent again (reauthorizeConnectedVehicle)."
        ),
        409,
    ),
    ErrorCode.SCOPE_NOT_GRANTED: ("The user did not grant every requested scope", 403),
    ErrorCode.ACCESS_REVOKED: (
        "Access to the vehicle was revoked at the provider",
        403,
    ),
    ErrorCode.CONNECTED_VEHICLE_MISMATCH: (
        "The vehicle found at the provider is not the vehicle that was connected before",
        422,
    ),
    ErrorCode.PROVIDER_REJECTED: ("The provider $PROVIDER rejected the request", 422),
    ErrorCode.PROVIDER_UNAVAILABLE: (
        "The provider $PROVIDER is unavailable. Try again later.",
        503,
    ),
    ErrorCode.RATE_LIMIT_EXCEEDED: ("Too many requests. Try again later.", 429),
    ErrorCode.ILLEGAL_TRANSITION: ("This change of status is not allowed", 409),
    ErrorCode.NOT_ALLOWED: (
        "This needs a token of the client's administrators (claim admin: true)",
        403,
    ),
    ErrorCode.BAD_USER_INPUT: ("The input is not valid", 400),
    ErrorCode.SERVICE_UNAVAILABLE: (
        (
            "The service is unavailable for a moment (its database or broker is away). "
            "Try again shortly."
        ),
        503,
    ),
    ErrorCode.CONNECTED_VEHICLE_UNREADABLE: (
        (
            "The connected vehicle's stored data cannot be read. It has been marked for "
            "the service's operators; nothing was changed."
        ),
        500,
    ),
}
# The codes a client may simply ask again for (SPEC §3: `extensions.retryable`).
_RETRYABLE = frozenset({ErrorCode.SERVICE_UNAVAILABLE, ErrorCode.RATE_LIMIT_EXCEEDED})


class DomainError(Exception):
    """An error a client sees: a code of the table, its message, its HTTP status."""

    def __init__(
        self,
        code: ErrorCode,
        *,
        provider: str | None = None,
        message: str | None = None,
    ) -> None:
        self.code = code
        self.message = message or code.message(provider)
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return self.code.status
