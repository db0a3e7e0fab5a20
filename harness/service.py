"""The service's own processes (web, worker, beat), started from the Procfile's lines on
one environment, each logging to a file of the run's work directory."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx

from harness.procfile import QUEUES, procfile_argv, task_processes, web_argv, worker_argv
from harness.procs import BIN, Process, wait_for

__all__ = ["SUPERVISE", "Service", "service"]

# The supervisor the Procfile's lines run under (workers/supervise.py).
SUPERVISE = [str(BIN / "python"), "-m", "workers.supervise"]


class Service:
    """Processes on `env` (CV_DATABASE_URL, CV_BROKER_URL, CV_PUBLIC_URL, ...)."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.workers: list[Process] = []
        self.others: list[Process] = []
        self._started = 0

    def spawn(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        *,
        supervised: bool = True,
    ) -> Process:
        """`argv` as a process of the run, under `workers.supervise` (as `make run` starts
        the Procfile's lines: one that exits is started again) unless `supervised` is
        False. Its kill takes the supervisor and the process both."""
        self._started += 1
        log = self.workdir / f"{self._started:02d}-{name}.log"
        if supervised:
            argv = [*SUPERVISE, "--min-pause", "0.5", "--", *argv]
        return Process(name, argv, env or self.env, log)

    def start_worker(
        self,
        *,
        pool: str | None = None,
        concurrency: int | None = None,
        queues: Sequence[str] | None = QUEUES,
    ) -> Process:
        """The Procfile's worker; `pool` and `concurrency` override its line (and
        CV_WORKER_CONCURRENCY, which sizes the worker's own pools, follows `concurrency`).
        It serves every queue unless `queues` says otherwise (None: the line's own)."""
        env = dict(self.env)
        if concurrency is not None:
            env["CV_WORKER_CONCURRENCY"] = str(concurrency)
        name = f"w{len(self.workers) + 1}-{uuid.uuid4().hex[:6]}@%h"
        argv = worker_argv(env, pool=pool, concurrency=concurrency, name=name, queues=queues)
        proc = self.spawn(f"worker{len(self.workers) + 1}", argv, env)
        self.workers.append(proc)
        return proc

    def worker_processes(self) -> int:
        """OS processes that run tasks, over the live workers."""
        return sum(task_processes(w.argv) for w in self.workers if w.alive())

    def start_ops(self) -> Process:
        """The Procfile's `ops` line: client webhook deliveries and housekeeping."""
        proc = self.spawn("ops", procfile_argv("ops", self.env))
        self.others.append(proc)
        return proc

    def start_beat(self) -> Process:
        env = {**self.env, "CV_BEAT_SCHEDULE": str(self.workdir / "beat-schedule")}
        proc = self.spawn("beat", procfile_argv("beat", env), env)
        self.others.append(proc)
        return proc

    def start_web(self, *, processes: int | None = None, timeout: float = 60) -> str:
        """The Procfile's web on CV_PUBLIC_URL's port; its base URL once /readyz says so."""
        url = self.env["CV_PUBLIC_URL"].rstrip("/")
        port = int(url.rsplit(":", 1)[1])
        proc = self.spawn("web", web_argv(self.env, port=port, processes=processes))
        self.others.append(proc)

        def ready() -> bool:
            if not proc.alive():
                raise RuntimeError(f"the web process exited:\n{proc.output()}")
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200

        wait_for(ready, "the web process", timeout)
        return url

    def kill_worker(self, index: int = 0) -> None:
        """kill -9 the worker and its pool processes: the machine died."""
        self.workers[index].kill()

    def stop_workers(self) -> None:
        for proc in self.workers:
            proc.terminate()
        for proc in self.workers:
            proc.stop()
        self.workers.clear()

    def stop(self) -> None:
        everything = self.workers + self.others
        for proc in everything:  # all warm shutdowns at once, then wait for each
            proc.terminate()
        for proc in everything:
            proc.stop()

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(
            f"----- {p.name} -----\n{p.read_text(errors='replace')[-tail:]}"
            for p in sorted(self.workdir.glob("*.log"))
        )


@contextmanager
def service(env: dict[str, str], *, show_logs_on_error: bool = True) -> Iterator[Service]:
    """A Service whose processes stop (and whose logs go) when the block ends; on an
    error the logs' tails are printed first."""
    with TemporaryDirectory(prefix="cv-run-") as tmp:
        s = Service(env, Path(tmp))
        try:
            yield s
        except BaseException:
            if show_logs_on_error:
                print(s.logs())
            raise
        finally:
            s.stop()
