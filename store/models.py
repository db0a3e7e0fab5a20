"""The tables. Statuses, providers and scopes are stored as plain strings; their meaning
(the enums, the state machine) lives in `workflows/` and `providers/`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from store.crypto import Encrypted

__all__ = [
    "AppToken",
    "Base",
    "CatalogueVehicle",
    "Client",
    "ConnectedVehicle",
    "OAuthState",
    "OperatorAction",
    "OutboxEvent",
    "ProviderCredentials",
    "ProviderWebhook",
    "RedriveItem",
    "RedriveRun",
    "StepAttempt",
    "VehicleSnapshot",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WorkerHeartbeat",
    "new_id",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite hands back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if not isinstance(value, datetime):
            return None
        return value if value.tzinfo else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Client(Base):
    """A company whose users connect their cars; authenticates users with its own JWTs."""

    __tablename__ = "clients"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    signing_secret: Mapped[str] = mapped_column(Encrypted)
    # After a rotation the previous secret still verifies tokens until it expires, so
    # that the client's servers can switch over (cv client rotate-secret --grace).
    previous_signing_secret: Mapped[str | None] = mapped_column(Encrypted)
    previous_secret_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Where its users may be sent back after consent (like Smartcar's registered redirect
    # URIs): a vehicle's redirect_uri must be one of these, exactly.
    redirect_uris: Mapped[list[str]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )

    credentials: Mapped[list[ProviderCredentials]] = relationship(
        back_populates="client", cascade="all, delete-orphan"
    )


class ProviderCredentials(Base):
    """A client's OAuth application at one provider, and where that provider lives."""

    __tablename__ = "provider_credentials"

    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    oauth_client_id: Mapped[str] = mapped_column(String(200))
    oauth_client_secret: Mapped[str] = mapped_column(Encrypted)
    # None: the provider's production endpoints; else one base for all of them
    # (a sandbox, a region, or the local fake).
    base_url: Mapped[str | None] = mapped_column(String(500))
    # The secret the provider signs its webhooks to this client's app with.
    webhook_secret: Mapped[str | None] = mapped_column(Encrypted)

    client: Mapped[Client] = relationship(back_populates="credentials")


class CatalogueVehicle(Base):
    __tablename__ = "catalogue_vehicles"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    make: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    year_from: Mapped[int | None] = mapped_column(Integer)
    year_to: Mapped[int | None] = mapped_column(Integer)
    providers: Mapped[list[str]] = mapped_column(JSON, default=list)


class ConnectedVehicle(Base):
    __tablename__ = "connected_vehicles"
    __table_args__ = (
        # connectedVehicleList: its filter and its order, so that page 1 and a cursor's
        # page read a few index entries however large the fleet.
        Index("ix_connected_vehicles_list", "client_id", "user_id", "created_at", "id"),
        Index(
            "ix_connected_vehicles_list_status",
            "client_id",
            "user_id",
            "status",
            "created_at",
            "id",
        ),
        # The sweeper's three questions, each answered from a small partial index.
        Index(
            "ix_connected_vehicles_due",
            "step_due_at",
            postgresql_where=text("step IS NOT NULL"),
            sqlite_where=text("step IS NOT NULL"),
        ),
        Index(
            "ix_connected_vehicles_waiting",
            "pending_since",
            postgresql_where=text("status = 'pending' AND step IS NULL"),
            sqlite_where=text("status = 'pending' AND step IS NULL"),
        ),
        # Tokens due for a refresh (beat takes them in batches).
        Index(
            "ix_connected_vehicles_refresh_due",
            "refresh_due_at",
            postgresql_where=text("refresh_due_at IS NOT NULL"),
            sqlite_where=text("refresh_due_at IS NOT NULL"),
        ),
        # Rows this service could not read (operators list them: cv vehicles list
        # --unreadable); periodic passes skip them.
        Index(
            "ix_connected_vehicles_unreadable",
            "unreadable_at",
            postgresql_where=text("unreadable_at IS NOT NULL"),
            sqlite_where=text("unreadable_at IS NOT NULL"),
        ),
        # The operators' console (workflows.fleet): what failed, and why, newest first;
        # and its search by what identifies a car or its user.
        Index(
            "ix_connected_vehicles_fleet",
            "status",
            "failure_code",
            "provider",
            "updated_at",
            "id",
        ),
        Index("ix_connected_vehicles_vin", "vin"),
        Index("ix_connected_vehicles_provider_vehicle", "provider_vehicle_id"),
        Index("ix_connected_vehicles_user", "user_id"),
        Index(
            "ix_connected_vehicles_claimed",
            "code_claimed_at",
            postgresql_where=text("code_claimed_at IS NOT NULL AND access_token IS NULL"),
            sqlite_where=text("code_claimed_at IS NOT NULL AND access_token IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"))
    user_id: Mapped[str] = mapped_column(String(200))
    vehicle_id: Mapped[str] = mapped_column(ForeignKey("catalogue_vehicles.id"))
    provider: Mapped[str] = mapped_column(String(32))
    scope: Mapped[list[str]] = mapped_column(JSON, default=list)
    label: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(32))
    # Optimistic lock: every UPDATE checks and bumps it, on top of the row lock.
    version: Mapped[int] = mapped_column(Integer, default=1)

    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(Text)
    failure_retryable: Mapped[bool | None] = mapped_column(Boolean)

    # Where the user lands when the provider's flow is over (the client's page).
    redirect_uri: Mapped[str | None] = mapped_column(String(1000))
    # Encrypted: it carries the raw OAuth state, which oauth_states keeps only hashed.
    authorization_url: Mapped[str | None] = mapped_column(Encrypted)

    # The single-use code, from the callback or from authorizeConnectedVehicle.
    auth_code: Mapped[str | None] = mapped_column(Encrypted)
    code_received_at: Mapped[datetime | None]
    # Set, and committed, before the code is spent: a second job never spends it again.
    code_claimed_at: Mapped[datetime | None]
    # The worker process spending it (a `worker_heartbeats` id), when it beats: a claim
    # whose process stopped beating was lost with it (workflows.liveness).
    code_claimed_by: Mapped[str | None] = mapped_column(String(200))

    # The workflow step due (a job's name in the domain's words), when it is due, and its
    # attempts so far: the retry policy and the sweeper read these, not the broker.
    step: Mapped[str | None] = mapped_column(String(32))
    step_due_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)

    access_token: Mapped[str | None] = mapped_column(Encrypted)
    refresh_token: Mapped[str | None] = mapped_column(Encrypted)
    token_expires_at: Mapped[datetime | None]
    # When the refresh step comes due (the token's expiry minus a margin); set while the
    # vehicle is authorized and holds tokens that expire, None otherwise.
    refresh_due_at: Mapped[datetime | None]

    vin: Mapped[str | None] = mapped_column(String(32))
    provider_vehicle_id: Mapped[str | None] = mapped_column(String(200))
    # The provider's own user for this connection (Enode: one user per vehicle).
    provider_user_id: Mapped[str | None] = mapped_column(String(200))
    # A link flow (Enode) has no code: the user's return is the sign to validate.
    link_completed_at: Mapped[datetime | None]

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    authorized_at: Mapped[datetime | None]
    # When it last became pending (created, re-driven, reauthorized): a pending vehicle's
    # time to live runs from here, whatever else (a label) changed since.
    pending_since: Mapped[datetime | None]
    # Set when the service could not read the row (a secret that does not decrypt with
    # CV_SECRET_KEY, corrupt data): it fails alone, and periodic passes skip it until an
    # operator mends it and clears the mark (cv vehicles unmark).
    unreadable_at: Mapped[datetime | None]
    unreadable_reason: Mapped[str | None] = mapped_column(Text)

    # The car's last data (workflows.data). Set to None, it is deleted with the flush:
    # lost access forgets what was read with it.
    snapshot: Mapped[VehicleSnapshot | None] = relationship(
        cascade="all, delete-orphan", single_parent=True, uselist=False
    )

    __mapper_args__ = {"version_id_col": version}


class VehicleSnapshot(Base):
    """The car's last data, as a worker stored it (a fetch, or a provider's webhook);
    the API answers from it and never calls the provider."""

    __tablename__ = "vehicle_snapshots"

    vehicle_id: Mapped[str] = mapped_column(ForeignKey("connected_vehicles.id"), primary_key=True)
    # providers.data.VehicleData.to_json(): four parts, each with when it was measured.
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    fetched_at: Mapped[datetime | None]  # when the service stored `data`
    # A fetch enqueued and not finished: another asker joins it instead of sending one.
    fetch_requested_at: Mapped[datetime | None]
    # The last fetch that failed (a car asleep, the provider down), and why.
    fetch_failed_at: Mapped[datetime | None]
    fetch_error: Mapped[str | None] = mapped_column(Text)


class WorkerHeartbeat(Base):
    """A live worker process that runs steps, as it says every few seconds
    (workflows.liveness): one that stopped beating died, and what it held is taken
    back by the sweep."""

    __tablename__ = "worker_heartbeats"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # host, pid, boot token
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(default=utcnow)  # by its own clock
    # When a sweep found it silent (by the sweeper's clock); its next beat clears it.
    suspected_at: Mapped[datetime | None]


class OAuthState(Base):
    """A random, single-use, expiring `state` bound to one connected vehicle and client.

    Only its SHA-256 is stored: a database reader cannot replay a flow in progress.
    """

    __tablename__ = "oauth_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    vehicle_id: Mapped[str] = mapped_column(ForeignKey("connected_vehicles.id"), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    # PKCE (High Mobility): the verifier stays with the state that sent its challenge.
    code_verifier: Mapped[str | None] = mapped_column(Encrypted)


class AppToken(Base):
    """A provider app's own token (client credentials), shared by every worker."""

    __tablename__ = "app_tokens"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    access_token: Mapped[str] = mapped_column(Encrypted)
    expires_at: Mapped[datetime]


class OutboxEvent(Base):
    """An event written in the same transaction as the change it tells of."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index(
            "ix_outbox_unpublished",
            "seq",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
        # Retention (workflows.retention): published events, oldest first.
        Index(
            "ix_outbox_published",
            "published_at",
            postgresql_where=text("published_at IS NOT NULL"),
            sqlite_where=text("published_at IS NOT NULL"),
        ),
    )

    # seq orders events (per vehicle too); id is the stable id subscribers dedupe on.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    )
    id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    type: Mapped[str] = mapped_column(String(64))
    vehicle_id: Mapped[str] = mapped_column(String(36), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]
    # The request (X-Request-ID) that set the change in motion, as its log lines carry
    # it; for operators, never in the client's payload. None for periodic work's own.
    request_id: Mapped[str | None] = mapped_column(String(64))


class WebhookEndpoint(Base):
    """A client's URL that receives its vehicles' events, signed (Standard Webhooks)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), index=True)
    url: Mapped[str] = mapped_column(String(1000))
    secret: Mapped[str] = mapped_column(Encrypted)
    # During a rotation the previous secret signs too, until it expires.
    previous_secret: Mapped[str | None] = mapped_column(Encrypted)
    previous_secret_expires_at: Mapped[datetime | None]
    # Event types it wants; empty: all of them.
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event for one endpoint; its schedule lives here, not in the broker."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_event"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # Retention (workflows.retention): finished deliveries by when they finished, and
        # the events that deliveries not finished still stand for (kept).
        Index(
            "ix_webhook_deliveries_finished",
            "updated_at",
            postgresql_where=text("status <> 'pending'"),
            sqlite_where=text("status <> 'pending'"),
        ),
        Index(
            "ix_webhook_deliveries_pending_event",
            "event_id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    # The outbox event's id: the `webhook-id` of every attempt.
    event_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)  # exactly the bytes signed and sent
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class ProviderWebhook(Base):
    """A provider's webhook delivery, stored (verified) before it is answered."""

    __tablename__ = "provider_webhooks"
    __table_args__ = (
        UniqueConstraint("provider", "delivery_key", name="uq_provider_webhooks_delivery"),
        Index(
            "ix_provider_webhooks_unprocessed",
            "received_at",
            postgresql_where=text("processed_at IS NULL"),
            sqlite_where=text("processed_at IS NULL"),
        ),
        # Retention (workflows.retention): processed deliveries, oldest first.
        Index(
            "ix_provider_webhooks_processed",
            "processed_at",
            postgresql_where=text("processed_at IS NOT NULL"),
            sqlite_where=text("processed_at IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    provider: Mapped[str] = mapped_column(String(32))
    # The provider's delivery id (or the body's SHA-256 when it sends none): a replay of
    # the same delivery is stored once.
    delivery_key: Mapped[str] = mapped_column(String(200))
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"))
    body: Mapped[dict[str, Any] | list[Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(Text)


def _serial() -> Any:
    return BigInteger().with_variant(Integer, "sqlite")


class StepAttempt(Base):
    """One attempt of a workflow step, recorded as it ends (workflows.attempts): what the
    operators' history shows. Never a token, a code or a secret: the error is the
    provider error's message (provider, HTTP status, its error code), the endpoint its
    template."""

    __tablename__ = "step_attempts"
    __table_args__ = (
        Index("ix_step_attempts_vehicle", "vehicle_id", "id"),
        Index("ix_step_attempts_ended", "ended_at"),  # retention
    )

    id: Mapped[int] = mapped_column(_serial(), primary_key=True, autoincrement=True)
    vehicle_id: Mapped[str] = mapped_column(String(36))
    step: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer)
    task_id: Mapped[str | None] = mapped_column(String(64))  # the Celery task (Flower)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    # succeeded, failed (the vehicle), retrying, exhausted, error
    outcome: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(300))
    provider_calls: Mapped[int] = mapped_column(Integer, default=0)
    http_status: Mapped[int | None] = mapped_column(Integer)  # the call that decided
    endpoint: Mapped[str | None] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(64))


class OperatorAction(Base):
    """An operator's action, for the audit (workflows.audit): who, when, what, why."""

    __tablename__ = "operator_actions"
    __table_args__ = (
        Index("ix_operator_actions_at", "at"),
        Index("ix_operator_actions_vehicle", "vehicle_id"),
    )

    id: Mapped[int] = mapped_column(_serial(), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))  # the Flower login, or the OS user
    via: Mapped[str] = mapped_column(String(16))  # cli, flower, ops
    action: Mapped[str] = mapped_column(String(32))
    vehicle_id: Mapped[str | None] = mapped_column(String(36))
    run_id: Mapped[str | None] = mapped_column(String(36))
    reason: Mapped[str | None] = mapped_column(Text)
    filter: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    outcome: Mapped[str | None] = mapped_column(Text)


class RedriveRun(Base):
    """A bulk re-drive (workflows.bulk): the vehicles its filter chose when it began
    (its items), the pace it keeps, and where it stands."""

    __tablename__ = "redrive_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    actor: Mapped[str] = mapped_column(String(200))
    via: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    filter: Mapped[dict[str, Any]] = mapped_column(JSON)
    force: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default="running")  # running, stopped, done
    total: Mapped[int] = mapped_column(Integer, default=0)
    redriven: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    # The job working on it (workflows.bulk): one at a time, whoever sent it.
    lease_token: Mapped[str | None] = mapped_column(String(36))
    lease_until: Mapped[datetime | None]


class RedriveItem(Base):
    """One vehicle of a bulk re-drive, and what became of it (None: not yet)."""

    __tablename__ = "redrive_items"
    __table_args__ = (
        Index(
            "ix_redrive_items_todo",
            "run_id",
            "vehicle_id",
            postgresql_where=text("result IS NULL"),
            sqlite_where=text("result IS NULL"),
        ),
        Index("ix_redrive_items_vehicle", "vehicle_id"),
    )

    run_id: Mapped[str] = mapped_column(ForeignKey("redrive_runs.id"), primary_key=True)
    vehicle_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    result: Mapped[str | None] = mapped_column(String(16))  # redriven, skipped, refused
    detail: Mapped[str | None] = mapped_column(Text)
    done_at: Mapped[datetime | None]
