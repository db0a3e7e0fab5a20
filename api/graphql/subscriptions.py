"""The `connectedVehicle` subscription (SPEC §3, graphql-transport-ws): the vehicle now,
then every change, read from the outbox. The caller is checked before it starts, by the
field's permission (:class:`~api.graphql.context.Caller`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import strawberry
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from strawberry.types import Info

import metrics
from api.errors import RETRY_AFTER_UNAVAILABLE, Unexpected
from api.graphql.context import Caller, context_of
from api.graphql.inputs import VEHICLE_ID
from api.graphql.types import ConnectedVehicleType
from api.work import ServiceUnavailable
from store.models import ConnectedVehicle, OutboxEvent
from workflows import vehicles
from workflows.errors import DomainError
from workflows.unreadable import reading
from workflows.user_tokens import Principal

__all__ = ["Subscription"]

log = logging.getLogger(__name__)


@strawberry.type(description="Live changes, over a WebSocket at /graphql (graphql-transport-ws).")
class Subscription:
    @strawberry.subscription(
        name="connectedVehicle",
        permission_classes=[Caller],
        description="The vehicle as it is now, then again at every change, in order, none"
        " missed, whichever worker made it. Over a WebSocket at /graphql"
        " (graphql-transport-ws; over HTTP it is refused); from a browser, the two headers"
        " go in `connection_init`'s payload. Errors, as an `error` message for the"
        " operation: CONNECTED_VEHICLE_NOT_FOUND, CONNECTED_VEHICLE_UNREADABLE,"
        " BAD_USER_INPUT (over the connection's cap of operations at once).",
    )
    async def connected_vehicle(
        self, info: Info, id: Annotated[strawberry.ID, VEHICLE_ID]
    ) -> AsyncGenerator[ConnectedVehicleType, None]:
        """The vehicle now, then every change, in order. The changes are read from the
        outbox (the database is the truth), so none is missed or repeated, whichever
        worker or relay made it. A change wakes the read: the process's one listener on
        CHANGED (`api.wakeups`), shared by every subscription and waiting mutation, so an
        idle subscription holds no connection and reads nothing; a slow re-read covers a
        wake that was lost."""
        ctx = context_of(info)
        who = ctx.caller
        vehicle_id = str(id)
        metrics.SUBSCRIPTIONS_OPEN.inc()
        try:
            async with ctx.wakeups.watch(vehicle_id) as changed:  # before reading: no gap
                row, seq = await ctx.run(lambda s: _now(s, who, vehicle_id))
                metrics.SUBSCRIPTIONS.labels(metrics.STARTED).inc()
                yield ConnectedVehicleType.of(row)
                while True:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            changed.wait(), ctx.settings.subscription_recheck_seconds
                        )
                    changed.clear()  # before the read: a change after it wakes the next
                    try:
                        changes = await ctx.run(
                            functools.partial(_changes, vehicle_id=vehicle_id, after=seq)
                        )
                    except ServiceUnavailable:  # a blip: read from `seq` at the next wake
                        changed.set()
                        await asyncio.sleep(RETRY_AFTER_UNAVAILABLE)
                        continue
                    for change_seq, payload in changes:
                        seq = change_seq
                        yield ConnectedVehicleType.from_view(payload)
        except DomainError as exc:
            metrics.SUBSCRIPTIONS.labels(exc.code.value).inc()  # a code of the fixed table
            raise
        except Exception as exc:
            # Strawberry hands a running subscription's error to process_errors without
            # a path, as if it were the document's: say here that it is unexpected.
            log.error("unexpected error in the subscription of %s", vehicle_id, exc_info=exc)
            metrics.SUBSCRIPTIONS.labels("INTERNAL_SERVER_ERROR").inc()
            raise Unexpected from None
        finally:  # ended by the client, the connection, or an error
            metrics.SUBSCRIPTIONS_OPEN.dec()


def _now(session: Session, who: Principal, vehicle_id: str) -> tuple[ConnectedVehicle, int]:
    row = vehicles.view_owned(session, who, vehicle_id)
    seq = session.execute(
        select(func.coalesce(func.max(OutboxEvent.seq), 0)).where(
            OutboxEvent.vehicle_id == vehicle_id
        )
    ).scalar_one()
    return row, int(seq)


def _changes(session: Session, vehicle_id: str, after: int) -> list[tuple[int, dict[str, Any]]]:
    """The vehicle's events after `after`. Events carry no authorization URL (it holds the
    OAuth state); the subscriber is the vehicle's owner, so a pending one's is read back
    here, decrypted only when some event says it is ready."""
    rows = session.execute(
        select(OutboxEvent.seq, OutboxEvent.payload)
        .where(OutboxEvent.vehicle_id == vehicle_id, OutboxEvent.seq > after)
        .order_by(OutboxEvent.seq)
    ).all()
    changes = [(int(seq), dict(payload)) for seq, payload in rows]
    if any(p.get("authorization_ready") for _, p in changes):
        with reading(vehicle_id):
            url = session.execute(
                select(ConnectedVehicle.authorization_url).where(ConnectedVehicle.id == vehicle_id)
            ).scalar_one_or_none()
        for _, payload in changes:
            if payload.get("authorization_ready"):
                payload["authorization_url"] = url
    return changes
