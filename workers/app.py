"""The Celery app, configured from the top-level `celeryconfig.py`."""

from __future__ import annotations

from celery import Celery

__all__ = ["app"]

app = Celery("connected_vehicles", include=["workers.tasks"])
app.config_from_object("celeryconfig")

from workers import runtime  # noqa: E402

runtime.bind(app)  # its dispatcher sends to this app's broker

from workers.alive import Alive  # noqa: E402

app.steps["worker"].add(Alive)  # CV_ALIVE_FILE: a liveness probe's file

import workers.correlation  # noqa: E402  (logs, traces; the request id rides with tasks)
import workers.heartbeat  # noqa: E402  (processes that run steps say they live)
import workers.metering  # noqa: E402  (steps, deliveries, sweeps counted)
import workers.startup  # noqa: E402, F401  (worker and beat check the secret key first)
