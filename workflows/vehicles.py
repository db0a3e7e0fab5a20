"""Reading and changing connected vehicles as their owner (a client's user) sees them.

Reads for the API load no secret: the encrypted columns are deferred (raising if touched,
so that a new reader cannot decrypt them by accident), except a pending vehicle's
authorization URL, which the client needs. Lists page by offset (`page`) or, at constant
cost, by an opaque cursor (`after`) over the list's index (client, user, [status,]
created_at, id).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Text, literal, select, tuple_, type_coerce
from sqlalchemy.orm import Session, defer
from sqlalchemy.orm.attributes import set_committed_value

import logconfig
from store.crypto import Encrypted, SecretKeyError, decrypt
from store.models import CatalogueVehicle, ConnectedVehicle, utcnow
from workflows.errors import DomainError, ErrorCode
from workflows.events import record_event
from workflows.unreadable import mark, reading
from workflows.user_tokens import Principal

__all__ = [
    "LABEL_MAX",
    "catalogue",
    "catalogue_vehicle",
    "checked_text",
    "cursor_key",
    "cursor_of",
    "list_owned",
    "lock",
    "owned",
    "peek",
    "update_label",
    "view_owned",
]

MAX_PAGE_SIZE = 100
LABEL_MAX = 200  # the column's width


def checked_text(value: str | None, field: str, max_length: int) -> str | None:
    """A client's text as the database can hold it, or BAD_USER_INPUT (naming the field,
    never echoing the value): at most `max_length` characters, no control characters."""
    if value is None:
        return None
    if len(value) > max_length:
        raise DomainError(
            ErrorCode.BAD_USER_INPUT, message=f"{field} is longer than {max_length} characters"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise DomainError(ErrorCode.BAD_USER_INPUT, message=f"{field} contains a control character")
    return value


# Every encrypted column of a connected vehicle (tokens, the code, the authorization URL).
_SECRET_COLUMNS = [
    getattr(ConnectedVehicle, c.key)
    for c in ConnectedVehicle.__table__.columns
    if isinstance(c.type, Encrypted)
]


def _no_secrets(*, but_authorization_url: bool) -> list[Any]:
    keep = {"authorization_url"} if but_authorization_url else set()
    return [defer(c, raiseload=True) for c in _SECRET_COLUMNS if c.key not in keep]


def lock(session: Session, vehicle_id: str) -> ConnectedVehicle | None:
    """The row, held until the transaction ends (FOR UPDATE; SQLite's write lock)."""
    stmt = select(ConnectedVehicle).where(ConnectedVehicle.id == vehicle_id).with_for_update()
    with reading(vehicle_id):
        vehicle = session.execute(stmt).scalar_one_or_none()
    if vehicle is not None:  # the work's log lines name its vehicle and client
        logconfig.note_vehicle(vehicle.id, vehicle.client_id)
    return vehicle


def owned(
    session: Session, who: Principal, vehicle_id: str, *, for_update: bool = False
) -> ConnectedVehicle:
    """The caller's vehicle; another client's or user's is not found, never visible."""
    stmt = select(ConnectedVehicle).where(
        ConnectedVehicle.id == vehicle_id,
        ConnectedVehicle.client_id == who.client_id,
        ConnectedVehicle.user_id == who.user_id,
    )
    if for_update:
        stmt = stmt.with_for_update()
    with reading(vehicle_id):
        vehicle = session.execute(stmt).scalar_one_or_none()
    if vehicle is None:
        raise DomainError(ErrorCode.CONNECTED_VEHICLE_NOT_FOUND)
    return vehicle


def view_owned(session: Session, who: Principal, vehicle_id: str) -> ConnectedVehicle:
    """The caller's vehicle as the API shows it (no token, no code loaded)."""
    stmt = (
        select(ConnectedVehicle)
        .options(*_no_secrets(but_authorization_url=True))
        .where(
            ConnectedVehicle.id == vehicle_id,
            ConnectedVehicle.client_id == who.client_id,
            ConnectedVehicle.user_id == who.user_id,
        )
    )
    with reading(vehicle_id):
        vehicle = session.execute(stmt).scalar_one_or_none()
    if vehicle is None:
        raise DomainError(ErrorCode.CONNECTED_VEHICLE_NOT_FOUND)
    return vehicle


def peek(session: Session, vehicle_id: str) -> ConnectedVehicle:
    """A vehicle the caller was already checked for, as the API shows it (a wait's read)."""
    stmt = (
        select(ConnectedVehicle)
        .options(*_no_secrets(but_authorization_url=True))
        .where(ConnectedVehicle.id == vehicle_id)
    )
    with reading(vehicle_id):
        return session.execute(stmt).scalar_one()


def _page(size: int, page: int) -> tuple[int, int]:
    if not 1 <= size <= MAX_PAGE_SIZE or page < 1:
        raise DomainError(
            ErrorCode.BAD_USER_INPUT,
            message=f"size must be 1 to {MAX_PAGE_SIZE} and page at least 1",
        )
    return size, (page - 1) * size


# -- cursors: (created_at, id) of a page's last vehicle, with a MAC bound to its owner ----------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BAD_CURSOR = "after is not a cursor of this list"


@lru_cache(maxsize=4)
def cursor_key(secret_key: str) -> bytes:
    """The MAC key of cursors, derived from the service's secret key (its first one: a key
    rotation makes open cursors BAD_USER_INPUT, and the client starts again)."""
    first = secret_key.split(",")[0].strip()
    return hashlib.sha256(b"cv:list-cursor\x00" + first.encode()).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, who: Principal, payload: bytes) -> bytes:
    owner = f"{who.client_id}\x00{who.user_id}\x00".encode()
    return hmac.new(key, owner + payload, hashlib.sha256).digest()[:12]


def cursor_of(vehicle: ConnectedVehicle, who: Principal, key: bytes) -> str:
    """The opaque cursor of `vehicle` in its owner's list: the next page starts after it."""
    micros = (vehicle.created_at - _EPOCH) // timedelta(microseconds=1)
    payload = f"{micros}:{vehicle.id}".encode()
    return f"{_b64(payload)}.{_b64(_mac(key, who, payload))}"


def _position(cursor: str, who: Principal, key: bytes) -> tuple[datetime, str]:
    """(created_at, id) from a cursor of this caller's, or BAD_USER_INPUT: malformed,
    tampered with, or another client's or user's."""
    try:
        payload_b64, _, tag_b64 = cursor.partition(".")
        payload, tag = _unb64(payload_b64), _unb64(tag_b64)
        if not hmac.compare_digest(tag, _mac(key, who, payload)):
            raise ValueError("foreign or tampered cursor")
        micros, _, vehicle_id = payload.decode().partition(":")
        if not vehicle_id:
            raise ValueError("no id")
        return _EPOCH + timedelta(microseconds=int(micros)), vehicle_id
    except (ValueError, binascii.Error, UnicodeError, OverflowError) as exc:
        raise DomainError(ErrorCode.BAD_USER_INPUT, message=_BAD_CURSOR) from exc


def list_owned(
    session: Session,
    who: Principal,
    *,
    status: str | None,
    size: int,
    page: int,
    after: str | None = None,
    key: bytes = b"",
) -> list[ConnectedVehicle]:
    """A page of the caller's vehicles, oldest first: by `page` (offset), or after the
    vehicle of cursor `after` (keyset: constant cost however deep, and no vehicle seen
    twice or skipped while others are added)."""
    limit, offset = _page(size, page)
    stmt = (
        select(ConnectedVehicle)
        .options(*_no_secrets(but_authorization_url=False))
        .where(
            ConnectedVehicle.client_id == who.client_id,
            ConnectedVehicle.user_id == who.user_id,
        )
    )
    if status:
        stmt = stmt.where(ConnectedVehicle.status == status)
    if after is not None:
        if page != 1:
            raise DomainError(ErrorCode.BAD_USER_INPUT, message="give page or after, not both")
        created_at, vehicle_id = _position(after, who, key)
        stmt = stmt.where(
            tuple_(ConnectedVehicle.created_at, ConnectedVehicle.id)
            > tuple_(
                literal(created_at, ConnectedVehicle.created_at.type),
                literal(vehicle_id, ConnectedVehicle.id.type),
            )
        )
    stmt = stmt.order_by(ConnectedVehicle.created_at, ConnectedVehicle.id)
    rows = list(session.execute(stmt.limit(limit).offset(offset)).scalars())
    _load_authorization_urls(session, rows)
    return rows


def _load_authorization_urls(session: Session, rows: Sequence[ConnectedVehicle]) -> None:
    """Only pending vehicles show their authorization URL: read those in one query, and
    decrypt each on its own, so that one that does not decrypt fails alone (shown
    without its URL, and marked for operators) and the list answers."""
    pending = [r for r in rows if r.status == "pending"]
    urls: dict[str, str | None] = {}
    if pending:
        stored = type_coerce(ConnectedVehicle.authorization_url, Text)  # as stored
        stmt = select(ConnectedVehicle.id, stored).where(
            ConnectedVehicle.id.in_([r.id for r in pending])
        )
        unreadable: list[tuple[str, SecretKeyError]] = []
        for vehicle_id, value in session.execute(stmt):
            try:
                urls[vehicle_id] = decrypt(value) if value is not None else None
            except SecretKeyError as exc:
                unreadable.append((vehicle_id, exc))
        for vehicle_id, cause in unreadable:  # listed without its URL, and marked
            mark(session, vehicle_id, cause)
        if unreadable:
            session.commit()
    for row in rows:
        set_committed_value(row, "authorization_url", urls.get(row.id))


def update_label(
    session: Session, who: Principal, vehicle_id: str, label: str | None
) -> ConnectedVehicle:
    label = checked_text(label, "label", LABEL_MAX)
    vehicle = owned(session, who, vehicle_id, for_update=True)
    if vehicle.label != label:
        vehicle.label = label
        vehicle.updated_at = utcnow()
        record_event(session, "connected_vehicle.updated", vehicle)
    session.commit()
    return vehicle


def catalogue_vehicle(session: Session, vehicle_id: str) -> CatalogueVehicle | None:
    return session.get(CatalogueVehicle, vehicle_id)


def catalogue(
    session: Session, *, providers: list[str] | None, size: int, page: int
) -> list[CatalogueVehicle]:
    limit, offset = _page(size, page)
    rows = session.execute(select(CatalogueVehicle).order_by(CatalogueVehicle.id)).scalars()
    # The providers list is JSON: filtered here, the catalogue is small.
    wanted = set(providers or ())
    matching = [r for r in rows if not wanted or wanted & set(r.providers)]
    return matching[offset : offset + limit]
