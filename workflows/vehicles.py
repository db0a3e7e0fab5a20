"""Reading and changing connected vehicles as their owner (a client's user) sees them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import CatalogueVehicle, ConnectedVehicle, utcnow
from workflows.clients import Principal
from workflows.errors import DomainError, ErrorCode
from workflows.events import record_event

__all__ = [
    "catalogue",
    "catalogue_vehicle",
    "list_owned",
    "lock",
    "owned",
    "update_label",
]

MAX_PAGE_SIZE = 100


def lock(session: Session, vehicle_id: str) -> ConnectedVehicle | None:
    """The row, held until the transaction ends (FOR UPDATE; SQLite's write lock)."""
    stmt = select(ConnectedVehicle).where(ConnectedVehicle.id == vehicle_id).with_for_update()
    return session.execute(stmt).scalar_one_or_none()


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
    vehicle = session.execute(stmt).scalar_one_or_none()
    if vehicle is None:
        raise DomainError(ErrorCode.CONNECTED_VEHICLE_NOT_FOUND)
    return vehicle


def _page(size: int, page: int) -> tuple[int, int]:
    if not 1 <= size <= MAX_PAGE_SIZE or page < 1:
        raise DomainError(
            ErrorCode.BAD_USER_INPUT,
            message=f"size must be 1 to {MAX_PAGE_SIZE} and page at least 1",
        )
    return size, (page - 1) * size


def list_owned(
    session: Session, who: Principal, *, status: str | None, size: int, page: int
) -> list[ConnectedVehicle]:
    limit, offset = _page(size, page)
    stmt = select(ConnectedVehicle).where(
        ConnectedVehicle.client_id == who.client_id,
        ConnectedVehicle.user_id == who.user_id,
    )
    if status:
        stmt = stmt.where(ConnectedVehicle.status == status)
    stmt = stmt.order_by(ConnectedVehicle.created_at, ConnectedVehicle.id)
    return list(session.execute(stmt.limit(limit).offset(offset)).scalars())


def update_label(
    session: Session, who: Principal, vehicle_id: str, label: str | None
) -> ConnectedVehicle:
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
