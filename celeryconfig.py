"""Every Celery setting, in one place. Comments say which guarantee a setting protects.

The broker is only a trigger: the database holds the truth, and every task is safe to run
twice. These settings make a lost or repeated message rare; the workflow makes it harmless.
"""

from kombu.entity import Exchange, Queue

from settings import get_settings
from workflows.registry import TASKS, Job
from workflows.registry import Queue as Queue_

_settings = get_settings()

broker_url = _settings.broker_url
# A broker that goes away (a restart, a network blip) is waited for, for ever: a worker
# started before Redis waits for it, and a running one reconnects.
broker_connection_retry_on_startup = True
broker_connection_retry = True
broker_connection_max_retries = None

# No result backend: outcomes live in the database (the mutation's wait reads them there).
task_ignore_result = True
task_serializer = "json"
accept_content = ["json"]  # never unpickle what arrives on the broker
timezone = "UTC"

# Three queues, so that nothing slow stands in front of an authorization: a dead client
# endpoint (timeouts of seconds per delivery) or a long housekeeping pass waits in its
# own queue, served by the Procfile's `ops` worker; `worker` serves the steps. Each
# task's queue is the registry's (workflows.registry), its route made from it.
STEPS, WEBHOOKS, HOUSEKEEPING = Queue_.steps.value, Queue_.webhooks.value, Queue_.housekeeping.value
QUEUES = tuple(q.value for q in Queue_)
task_default_queue = STEPS
# Declared, so that a worker started without -Q (a test's) serves all three.
task_queues = [Queue(name, Exchange(name), routing_key=name) for name in QUEUES]
task_routes = {
    name: {"queue": spec.queue.value} for name, spec in TASKS.items() if spec.queue != STEPS
}

# At least once: the message is acked after the task ran, so a worker that dies mid-task
# leaves it on the broker to be delivered again (steps are idempotent).
task_acks_late = True
# With acks_late: a task whose worker process was killed (OOM, kill -9) is requeued
# rather than acked as failed.
task_reject_on_worker_lost = True
# A worker reserves at most two messages per pool slot. On gevent (the Procfile's pool)
# that is in effect one beyond the running ones: the consumer blocks in the pool's spawn
# while every greenlet is busy. With 1, the reservation limit equals the running tasks,
# and the Redis consumer then stops polling until its loop's 2 s drain timeout: the
# worker took <concurrency> tasks per 2 s, whatever they cost. What a crash strands
# (reserved, unacked) is re-driven by the sweep from the database.
worker_prefetch_multiplier = 2
# On a lost broker connection, stop long-running tasks instead of finishing them: their
# messages will be redelivered, and running them twice is safe.
worker_cancel_long_running_tasks_on_connection_loss = True

# A task runs for at most this long. The worker runs provider steps on gevent (see the
# Procfile): its pool enforces this hard limit (a gevent.Timeout raised in the task's
# greenlet; Celery's threads pool would drop it), not a soft one. Every provider call
# has its own, much shorter timeout (CV_PROVIDER_TIMEOUT_SECONDS) before that.
task_time_limit = _settings.task_time_limit_seconds
# Greenlets per worker process (the Procfile passes the same setting on the command line).
worker_concurrency = _settings.worker_concurrency


def broker_settings(url: str) -> dict[str, object]:
    """The settings that depend on the kind of broker `url` names."""
    if url.startswith(("amqp://", "amqps://", "pyamqp://")):
        # RabbitMQ: a quorum queue is replicated and survives the loss of a broker node.
        # Retries' countdowns then go through Celery's native delayed delivery, which
        # routes through topic exchanges; workers detect the quorum queue and drop global
        # QoS.
        return {
            "task_queues": [
                Queue(
                    name,
                    Exchange("cv", type="topic"),
                    routing_key=name,
                    queue_arguments={"x-queue-type": "quorum"},
                )
                for name in QUEUES
            ],
            "task_default_exchange": "cv",
            "task_default_exchange_type": "topic",
            "task_default_routing_key": "cv",
            # The broker confirms every message it took: a publish is not lost in flight.
            "broker_transport_options": {"confirm_publish": True},
            # No AMQP heartbeats: in a gevent worker Celery drains the event connection
            # from its loop to read them, and so can take the confirm that a greenlet
            # publishing a task event waits for, holding the dispatcher's lock for ever
            # (seen: a worker that stopped consuming; celery/celery#4817). A dead
            # connection still fails on its next read or write.
            "broker_heartbeat": 0,
        }
    # Redis redelivers an unacked message after the visibility timeout. It must exceed
    # every countdown (retries are capped at CV_RETRY_MAX_SECONDS) and every time limit,
    # or a task still waiting or running would be delivered to a second worker.
    visibility_timeout = 3600
    assert visibility_timeout > max(_settings.retry_max_seconds, task_time_limit)
    return {"broker_transport_options": {"visibility_timeout": visibility_timeout}}


globals().update(broker_settings(broker_url))

# Task events, so that Flower shows the workflow's jobs (housekeeping tasks send none:
# `send_events=False` in workers.tasks). No "sent" events: the publisher sends those
# whatever the task, and a housekeeping task would then sit in Flower as pending for
# ever; a step shows from the moment a worker receives it.
worker_send_task_events = True
task_send_sent_event = False

beat_schedule = {
    # The database is the truth, the broker only a trigger: this pass re-drives what a
    # lost message or a dead worker left undone, expires abandoned authorizations, and
    # publishes events whose relay kick was lost. Safe on several beat hosts at once.
    "sweep": {"task": Job.sweep.value, "schedule": _settings.sweep_interval_seconds},
    # Client webhooks' schedules live in the database; this sends what has come due.
    "deliver-webhooks": {"task": Job.deliver_webhooks.value, "schedule": 2.0},
    # Retention: published events, finished webhook deliveries and processed provider
    # webhooks older than CV_RETENTION_DAYS are deleted in small batches, or those tables
    # grow for ever. Safe on several beat hosts at once (SKIP LOCKED on PostgreSQL).
    "prune": {"task": Job.prune.value, "schedule": 3600.0},
}
