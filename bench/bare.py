"""The bench's baseline route: a POST that only enqueues a no-op task, on the same server
setup as the API (uvicorn, as many processes), so that the API's own cost per request
shows beside what a server and `send_task` cost at least.

    uvicorn bench.bare:app --workers N
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from workers.app import app as celery
from workflows.registry import Job

__all__ = ["app"]


async def enqueue(request: Request) -> Response:
    await request.body()  # read what a client sent, as the API does
    celery.send_task(Job.noop)
    return JSONResponse({"data": {"ok": True}})


async def ready(request: Request) -> Response:
    return JSONResponse({"ready": True})


app = Starlette(routes=[Route("/enqueue", enqueue, methods=["POST"]), Route("/", ready)])
