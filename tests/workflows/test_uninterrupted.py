"""`uninterrupted`: on gevent (the Procfile's workers), work started runs to its end
though its caller is killed meanwhile, as Celery kills a task's greenlet at its time
limit or when the broker connection drops; its outcome, raised or returned, reaches the
caller as if it ran in place. Run in a child process patched as a gevent worker is."""

from __future__ import annotations

import sys
import textwrap

from harness.procs import command

SCRIPT = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()
    import sys, time
    import gevent
    from workflows.uninterrupted import uninterrupted

    done = []

    def exchange():
        time.sleep(0.2)  # the provider answers
        done.append("tokens committed")
        return "tokens"

    def step():
        return uninterrupted(exchange)

    task = gevent.spawn(step)
    gevent.sleep(0.05)
    task.kill()  # the task stopped midway: GreenletExit in the caller
    gevent.sleep(0.4)
    print("killed:", task.dead and isinstance(task.value, gevent.GreenletExit))
    print("work:", done)

    def refused():
        raise ValueError("the provider refused")

    try:
        uninterrupted(refused)
    except ValueError as exc:
        print("raised:", exc)
    print("returned:", uninterrupted(lambda: 42))
    """
)


def test_work_runs_to_its_end_when_its_caller_is_killed() -> None:
    done = command([sys.executable, "-c", SCRIPT])

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "killed: True",
        "work: ['tokens committed']",
        "raised: the provider refused",
        "returned: 42",
    ]
    assert "Traceback" not in done.stderr  # gevent's hub printed no outcome of ours
