"""Every setting of the service, read from the environment once, into one typed object.

Each process calls :func:`get_settings` at its edge (the ASGI app, the Celery app, the
command-line tool) and passes the object down. Variables are prefixed ``CV_``; a ``.env``
file in the working directory is read too (``make run`` writes one with fresh secrets).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings", "is_redis"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CV_", env_file=".env", extra="ignore")

    # SQLite serves a single machine; PostgreSQL is the production database. The
    # platform-wide DATABASE_URL is taken too.
    database_url: str = Field(
        default="sqlite:///var/cv.sqlite3",
        validation_alias=AliasChoices("CV_DATABASE_URL", "DATABASE_URL"),
    )
    broker_url: str = "redis://127.0.0.1:6379/0"
    # Where the relay publishes events (Redis pub/sub); the broker's Redis by default.
    events_redis_url: str | None = None

    # The service's own address as providers and browsers see it: the OAuth callback
    # handed to providers is built from it.
    public_url: str = "http://127.0.0.1:8000"

    # Fernet key (urlsafe base64, 32 bytes) that encrypts provider tokens, provider
    # client secrets and clients' signing secrets at rest.
    secret_key: SecretStr = Field(default=SecretStr(""))

    # How long a mutation waits for its job's outcome before it answers `pending`.
    mutation_wait_seconds: float = 8.0
    # A waiting mutation is woken by its vehicle's change (pub/sub); it re-reads the
    # vehicle this often anyway, in case a wake was lost (200 waiters: 20 reads/s).
    wait_recheck_seconds: float = 10.0
    # Subscriptions per WebSocket connection (more get an error, the connection stays);
    # an idle subscription re-reads its vehicle this often in case a wake was lost.
    subscriptions_per_connection: int = 20
    subscription_recheck_seconds: float = 60.0
    # How long a web process keeps a client's decrypted signing secret (the JWT itself is
    # checked on every request); a rotation elsewhere is seen within this time.
    principal_cache_seconds: float = 30.0
    # What one request may cost (SPEC §4): its body (413 over it, read no further), and
    # a GraphQL document's depth, aliases and tokens (BAD_USER_INPUT, never executed).
    request_max_bytes: int = 65536
    graphql_max_depth: int = 10
    graphql_max_aliases: int = 15
    graphql_max_tokens: int = 2000
    # GraphiQL reads the schema by introspection; an operator may turn it off.
    graphql_introspection: bool = True
    # Webhook endpoints may be http and on loopback or private addresses: for local
    # development only (SPEC §4: https, public addresses, checked at every delivery).
    webhooks_allow_private: bool = False
    # How long a client's endpoint has to answer one delivery (then: a failed attempt,
    # retried on the schedule). Each waiting delivery holds a greenlet of the ops worker.
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Request rates per minute (SPEC §4), counted in Redis across web processes: each
    # client, each of its users, and each source address on the OAuth callback and the
    # providers' webhooks. Over one: RATE_LIMIT_EXCEEDED (429) with Retry-After.
    rate_client_per_minute: int = 6000
    rate_user_per_minute: int = 600
    rate_address_per_minute: int = 300
    # A user token whose `exp` is further ahead than this is AUTH_TOKEN_INVALID (SPEC §3):
    # a token that never ends is a credential that cannot be taken back.
    user_token_max_seconds: float = 86400.0
    # A pending vehicle's time to live: its OAuth state expires then, and the sweeper
    # fails a vehicle still waiting for its user with AUTHORIZATION_EXPIRED.
    pending_ttl_seconds: int = 3600

    # The sweeper (beat): how often it runs; how long a due step may go unfinished before
    # it is re-driven (its message was lost); how long a claimed code may stay unspent
    # when the process spending it is not known to be alive (longer than a task's time
    # limit): the vehicle then fails AUTHORIZATION_INTERRUPTED, the code never sent again.
    sweep_interval_seconds: float = 5.0
    stall_seconds: float = 60.0
    claim_timeout_seconds: float = 300.0
    # Worker processes that run steps say they live this often (worker_heartbeats); one
    # silent for `worker_dead_seconds` is suspected, and dead if still silent two
    # heartbeats later: its claims fail AUTHORIZATION_INTERRUPTED and the steps it may
    # have held are re-driven.
    heartbeat_seconds: float = Field(default=3.0, gt=0)
    worker_dead_seconds: float = Field(default=10.0, gt=0)
    # A file each worker touches every heartbeat, for an orchestrator's liveness probe
    # (`python -m workers.alive`); unset: none.
    alive_file: str | None = None
    # Days kept before beat prunes what is done with (tables stop growing); 0 keeps all.
    retention_days: int = Field(default=30, ge=0)
    # Rows deleted per transaction while pruning: short locks, small transactions.
    retention_batch: int = Field(default=1000, ge=1)

    # Each step attempt recorded (step_attempts: the operators' history of a vehicle);
    # off saves one row per attempt, and the console shows no attempts.
    step_attempts: bool = True
    # Vehicles a bulk re-drive takes back to work per second (workflows.bulk): new
    # users' authorizations keep their pace on the steps queue beside it.
    redrive_per_second: float = Field(default=20.0, gt=0, le=1000)

    # Bearer token of the operators' endpoints (/ops/...); unset: they answer 404.
    ops_token: SecretStr = Field(default=SecretStr(""))
    # Bearer token of the web's /metrics (Prometheus's `authorization`); unset: 404.
    metrics_token: SecretStr = Field(default=SecretStr(""))
    # prometheus-client's multiprocess directory, shared by this host's web and worker
    # processes (the web's /metrics adds them up); unset: each counts in memory alone.
    metrics_dir: str | None = None
    # Where `python -m api.exporter` listens: a host with workers and no web.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9108

    # Provider tokens are refreshed this long before they expire (the refresh step's due
    # time); a call about to go out with less than a minute left refreshes first.
    refresh_margin_seconds: float = 600.0
    # connectedVehicleData answers from the last snapshot while it is younger than this;
    # an older one makes a job fetch a new one (once, however many ask), waited for up
    # to CV_MUTATION_WAIT_SECONDS.
    data_max_age_seconds: float = 300.0
    # After a fetch failed (a car asleep, the provider down), the last snapshot is
    # answered at once for this long, without asking the provider again.
    data_retry_seconds: float = 30.0

    # Retries of transient provider errors: exponential backoff with full jitter.
    retry_max_attempts: int = 6
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 120.0
    # Timeout of one provider HTTP call.
    provider_timeout_seconds: float = 10.0
    # Connections kept open per provider base URL in a worker process (one pooled client
    # each): the steps of ~`worker_concurrency` vehicles share them.
    provider_max_connections: int = 600  # three calls at once per step, 200 steps

    # Provider steps wait on the network: a worker process runs this many at once (gevent
    # greenlets), and holds a database pool sized for them (connections are held only
    # between network calls, never across one).
    worker_concurrency: int = 200
    # The hard time limit of one task (a step with all its provider calls).
    task_time_limit_seconds: float = 150.0
    db_pool_size: int = 10
    db_max_overflow: int = 30
    # API processes (uvicorn workers) of `web`, and where it listens: loopback unless an
    # operator opens it; a platform's $PORT is taken when CV_WEB_PORT is not set.
    web_processes: int = 1
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8000, validation_alias=AliasChoices("CV_WEB_PORT", "PORT"))

    # Flower's basic-auth login (`user:password`), and where it listens.
    flower_basic_auth: SecretStr = Field(default=SecretStr(""))
    flower_host: str = "127.0.0.1"
    flower_port: int = 5555

    log_level: str = "INFO"
    # Log lines of web, worker and beat: one JSON object each (request_id, vehicle_id,
    # client_id beside the message), or `text` for a person at a terminal (make run).
    log_format: Literal["json", "text"] = "json"
    # Traces (OpenTelemetry, OTLP over HTTP) go here when set: web, workers, their
    # database and provider calls. Unset: no instrumentation is even imported.
    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CV_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    )

    @model_validator(mode="after")
    def _heartbeats_fit(self) -> Settings:
        # a live worker must have beaten a few times before it can be taken for dead
        if self.worker_dead_seconds < 3 * self.heartbeat_seconds:
            raise ValueError(
                "CV_WORKER_DEAD_SECONDS must be at least three CV_HEARTBEAT_SECONDS: a live "
                "worker would be taken for dead"
            )
        return self

    @property
    def callback_url(self) -> str:
        return self.public_url.rstrip("/") + "/oauth/callback"

    @property
    def events_url(self) -> str:
        return self.events_redis_url or self.broker_url

    def events_problem(self) -> str | None:
        """Why events cannot work with these settings, else None. Events, subscriptions,
        waits and rate limits use Redis (pub/sub, counters); with a RabbitMQ broker they
        need a Redis of their own."""
        if is_redis(self.events_url):
            return None
        return (
            "CV_EVENTS_REDIS_URL must name a Redis (redis://…) when CV_BROKER_URL is not "
            "Redis: events, subscriptions, waits and rate limits go through Redis"
        )


def is_redis(url: str) -> bool:
    """Whether `url` names a Redis (the broker's or the events'), not RabbitMQ."""
    return url.startswith(("redis://", "rediss://", "unix://"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
