"""``cv webhooks``: clients' webhook endpoints and their deliveries."""

from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy import select

from api.cli.common import fail as _fail
from api.cli.common import iso
from api.cli.common import open_db as _db
from settings import get_settings
from store.models import Client, WebhookDelivery, WebhookEndpoint
from workflows.errors import DomainError
from workflows.webhook_endpoints import create_endpoint, replay

__all__ = ["webhooks"]


@click.group()
def webhooks() -> None:
    """Clients' webhook endpoints and their deliveries."""


@webhooks.command("add")
@click.argument("client_id")
@click.argument("url")
@click.option("--event", "events", multiple=True, help="An event type (repeatable; default all).")
def webhooks_add(client_id: str, url: str, events: tuple[str, ...]) -> None:
    """Register an endpoint; prints its id and signing secret (shown once)."""
    with _db().session() as session:
        if session.get(Client, client_id) is None:
            _fail(f"no client {client_id!r}")
        try:
            endpoint = create_endpoint(
                session,
                client_id,
                url,
                list(events),
                allow_private=get_settings().webhooks_allow_private,
            )
        except DomainError as exc:
            _fail(exc.message)
            return
    click.echo(f"endpoint id:     {endpoint.id}")
    click.echo(f"signing secret:  {endpoint.secret}")


@webhooks.command("list")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for scripts.")
def webhooks_list(client_id: str, as_json: bool) -> None:
    """A client's endpoints (never their signing secrets)."""
    with _db().session() as session:
        rows = list(
            session.execute(
                select(WebhookEndpoint).where(WebhookEndpoint.client_id == client_id)
            ).scalars()
        )
        if as_json:
            click.echo(
                json.dumps(
                    [
                        {
                            "id": e.id,
                            "url": e.url,
                            "enabled": e.enabled,
                            "disabled_reason": e.disabled_reason,
                            "event_types": list(e.event_types or []),
                        }
                        for e in rows
                    ],
                    indent=2,
                )
            )
            return
        for e in rows:
            state = "enabled" if e.enabled else f"disabled ({e.disabled_reason})"
            click.echo(f"{e.id}  {state:30}  {','.join(e.event_types) or 'all'}  {e.url}")


@webhooks.command("deliveries")
@click.option("--status", type=click.Choice(["pending", "succeeded", "exhausted", "disabled"]))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for scripts.")
def webhooks_deliveries(status: str | None, limit: int, as_json: bool) -> None:
    """Deliveries, newest first: status, attempts, last answer."""
    stmt = select(WebhookDelivery).order_by(WebhookDelivery.created_at.desc()).limit(limit)
    if status:
        stmt = stmt.where(WebhookDelivery.status == status)
    with _db().session() as session:
        rows = list(session.execute(stmt).scalars())
        if as_json:
            click.echo(json.dumps([_delivery(d) for d in rows], indent=2))
            return
        for d in rows:
            answer = d.last_status or d.last_error or "-"
            click.echo(
                f"{d.id}  {d.status:10}  tries {d.attempts}  last {answer}  "
                f"{d.event_type}  event {d.event_id}"
            )


def _delivery(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "endpoint_id": d.endpoint_id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "created_at": iso(d.created_at),
    }


@webhooks.command("replay")
@click.argument("delivery_id")
def webhooks_replay(delivery_id: str) -> None:
    """Send a delivery again (the same webhook-id), on a fresh schedule."""
    with _db().session() as session:
        try:
            replay(session, delivery_id)
        except DomainError as exc:
            _fail(exc.message)
    click.echo(f"{delivery_id} will be sent again")
