"""The Procfile's split of the work, under a fault: clients' endpoints that never answer
fill the `ops` worker (webhook deliveries, housekeeping) to its last greenlet, and the
`worker` (workflow steps, a queue of their own) authorizes vehicles meanwhile."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from harness import cluster, wait_for
from harness.procfile import procfile_argv, worker_argv
from providers.fakes.serve import FakeServer, serve_in_thread
from settings import Settings
from store.db import Database
from store.models import WebhookAttempt, WebhookDelivery, utcnow
from workflows import webhook_endpoints

pytestmark = pytest.mark.faults

OPS_POOL = 4  # the ops worker's greenlets: few, so that dead endpoints take them all
DEAD_ENDPOINTS = 3  # each leased up to 5 deliveries at a time (webhook_delivery.take_due)


class DeadEndpoint:
    """A client's endpoint that takes the request and never answers (within the test)."""

    def __init__(self) -> None:
        self.in_flight = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.in_flight += 1
        try:
            await asyncio.sleep(120)
        finally:
            self.in_flight -= 1


@pytest.fixture
def dead() -> Iterator[tuple[DeadEndpoint, str]]:
    endpoint = DeadEndpoint()
    with serve_in_thread(endpoint) as url:
        yield endpoint, url + "/hooks"


def test_dead_client_endpoints_hold_up_no_authorization(
    clean: Database,
    settings: Settings,
    smartcar: FakeServer,
    broker: str,
    dead: tuple[DeadEndpoint, str],
) -> None:
    endpoint, url = dead
    with cluster(
        clean,
        settings,
        smartcar,
        broker,
        workers=0,
        CV_OPS_CONCURRENCY=str(OPS_POOL),
        # Longer than the test: an attempt that ended would free a greenlet
        CV_WEBHOOK_TIMEOUT_SECONDS="60",
    ) as c:
        # Given the Procfile's `worker` and `ops` lines, as they are (their queues), and
        # beat sending what is due to deliver
        env = c.env
        for name, argv in (
            ("worker", worker_argv(env, queues=None, name=f"steps-{uuid.uuid4().hex[:6]}@%h")),
            ("ops", procfile_argv("ops", env)),
        ):
            c.service.others.append(c.service.spawn(name, argv))
        wait_for(lambda: len(c.celery.control.ping(timeout=0.5)) >= 2, "worker and ops", 90)

        # and clients' endpoints that never answer, with deliveries due
        with clean.session() as session:
            ids = [
                webhook_endpoints.create_endpoint(
                    session, c.tenant.client_id, url, [], allow_private=True
                ).id
                for _ in range(DEAD_ENDPOINTS)
            ]
        body = json.dumps({"type": "connected_vehicle.authorized", "timestamp": "t", "data": {}})
        with clean.session() as session:
            for endpoint_id in ids:
                for _ in range(10):
                    session.add(
                        WebhookDelivery(
                            endpoint_id=endpoint_id,
                            event_id=str(uuid.uuid4()),
                            event_type="connected_vehicle.authorized",
                            body=body,
                            status="pending",
                            attempts=0,
                            next_attempt_at=utcnow(),
                        )
                    )
            session.commit()
        # which take every greenlet of `ops`
        wait_for(lambda: endpoint.in_flight >= OPS_POOL, "ops to be full", 60)

        # When users consent and come back, and their validations are enqueued
        c.put_in_flight(20)

        # Then every vehicle is authorized while `ops` is still full, and no delivery
        # attempt has ended: nothing of the steps waited behind them
        c.wait_until_terminal(60)
        assert c.count("authorized") == 20, c.logs()
        assert endpoint.in_flight >= OPS_POOL
        with clean.session() as session:
            ended = session.execute(select(func.count()).select_from(WebhookAttempt)).scalar_one()
        assert ended == 0
