"""One harness of real processes for the bench and the tests (end-to-end and fault tests):
a private redis-server, a PostgreSQL database of a run's own, the fakes served on
loopback, a tenant set up at them, and the service's processes started from the
Procfile's lines. It imports the service and its fakes, never the tests.

- `procs`: a child process in its own group with its log; waiting until something answers.
- `procfile`: the Procfile's commands, expanded from the environment, with overrides.
- `service`: web, worker and beat processes of one environment.
- `broker`, `database`, `tenant`: Redis, PostgreSQL and a client of the service.
- `env`: the CV_* settings of a run, set before anything reads them.
- `cluster`: N authorizations in flight on worker processes (in process, or over HTTP
  through the web), and the fault report.
"""

from harness.broker import RedisServer, celery_client, redis_server
from harness.cluster import Cluster, Report, cluster
from harness.database import (
    PG_ADMIN_URL,
    admin_execute,
    migrated_database,
    postgres_database,
)
from harness.env import new_secret_key, use_environment
from harness.procfile import (
    procfile_argv,
    task_processes,
    web_argv,
    worker_argv,
)
from harness.procs import (
    BIN,
    ROOT,
    Process,
    answers,
    cli,
    free_port,
    path_env,
    process,
    run_until,
    wait_for,
)
from harness.service import Service, service
from harness.tenant import APP_ID, APP_SECRET, Tenant, make_tenant, register_app

__all__ = [
    "APP_ID",
    "APP_SECRET",
    "BIN",
    "PG_ADMIN_URL",
    "ROOT",
    "Cluster",
    "Process",
    "RedisServer",
    "Report",
    "Service",
    "Tenant",
    "admin_execute",
    "answers",
    "celery_client",
    "cli",
    "cluster",
    "free_port",
    "make_tenant",
    "migrated_database",
    "new_secret_key",
    "path_env",
    "postgres_database",
    "process",
    "procfile_argv",
    "redis_server",
    "register_app",
    "run_until",
    "service",
    "task_processes",
    "use_environment",
    "wait_for",
    "web_argv",
    "worker_argv",
]
