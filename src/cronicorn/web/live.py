"""Live updates: `GET /events`, a server-sent event stream per signed-in page, fed by
PostgreSQL LISTEN/NOTIFY (`store.wakeups.RUNS_CHANNEL`), so a run written by any scheduler
reaches every API process's pages.

One LISTEN connection per process (`LiveHub`), opened with the first subscriber and closed
after the last; each notification ("<user> <endpoint>") goes to that user's streams only. A
page then re-fetches the fragments that show that endpoint (`static/app.js`). After the
listener reconnects every stream gets `resync` (notifications sent meanwhile are gone).

A stream ends after `STREAM_S` and the browser reconnects at once (`retry`): a server that
is shutting down is never held open by a dashboard left on a screen.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

import psycopg
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from cronicorn.logs import get_logger
from cronicorn.store.db import libpq_url
from cronicorn.store.wakeups import RUNS_CHANNEL
from cronicorn.web.deps import ViewerDep

log = get_logger("cronicorn.web.live")
router = APIRouter()

STREAM_S = 25.0
HEARTBEAT_S = 10.0
QUEUE_SIZE = 256
MAX_BACKOFF_S = 5.0
RESYNC = "*"


class LiveHub:
    def __init__(self, database_url: str) -> None:
        self._url = libpq_url(database_url)
        self._subscribers: dict[str, set[asyncio.Queue[str]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()  # set while LISTEN is in place (tests wait on it)
        self.stream_s = STREAM_S  # how long one stream lasts (tests shorten it)

    @contextlib.asynccontextmanager
    async def subscribe(self, user_id: str) -> AsyncIterator[asyncio.Queue[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.setdefault(user_id, set()).add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="web:live")
        try:
            yield queue
        finally:
            mine = self._subscribers.get(user_id, set())
            mine.discard(queue)
            if not mine:
                self._subscribers.pop(user_id, None)
            if not self._subscribers and self._task is not None:
                self._task.cancel()
                self._task = None
                self.listening.clear()

    def publish(self, payload: str) -> None:
        user_id, _, endpoint_id = payload.partition(" ")
        for queue in self._subscribers.get(user_id, ()):
            with contextlib.suppress(asyncio.QueueFull):  # a stuck page misses updates
                queue.put_nowait(endpoint_id)

    def _resync(self) -> None:
        for queues in self._subscribers.values():
            for queue in queues:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(RESYNC)

    async def _listen(self) -> None:
        backoff, first = 0.2, True
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, application_name="cronicorn-web:live"
                )
                async with conn:
                    await conn.execute(f"LISTEN {RUNS_CHANNEL}")
                    self.listening.set()
                    if not first:
                        self._resync()
                    first, backoff = False, 0.2
                    async for note in conn.notifies():
                        self.publish(note.payload)
            except (psycopg.Error, OSError) as exc:
                self.listening.clear()
                log.warning("live_listener_lost", error=str(exc).strip()[:200])
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                first = False


def get_hub(request: Request) -> LiveHub:
    hub: LiveHub = request.app.state.live
    return hub


LiveHubDep = Annotated[LiveHub, Depends(get_hub)]


def _event(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"


async def _stream(hub: LiveHub, user_id: str) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    async with hub.subscribe(user_id) as queue:
        yield "retry: 1000\n" + _event("hello", "live")
        ends = loop.time() + hub.stream_s
        while (left := ends - loop.time()) > 0:
            try:
                item = await asyncio.wait_for(queue.get(), min(HEARTBEAT_S, left))
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            yield _event("resync" if item == RESYNC else "endpoint", item)


@router.get("/events")
async def events(viewer: ViewerDep, hub: LiveHubDep) -> StreamingResponse:
    return StreamingResponse(
        _stream(hub, viewer.user_id),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
