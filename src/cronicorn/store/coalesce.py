"""One database probe shared by every caller that asked while it was pending.

A caller gets the result of a probe that STARTED after it asked, never of one already in
flight: what it learns is as fresh as a probe of its own would be. Callers that arrive
while a probe runs wait for the next one, which serves them all. Under load the probes run
back to back and each costs one round trip for however many requests queued meanwhile; an
idle process pays one round trip per call, as without sharing.

With `join_running`, a caller joins the probe in flight instead: its answer came after the
caller asked, which is enough to show the database answers (health), though not that a
change committed before the call has been seen (the credential cache needs that).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalesced(Generic[T]):
    """`await shared()` runs `probe` (or joins the next run of it) and returns its result;
    an exception of the probe is raised to every caller of that run."""

    def __init__(self, probe: Callable[[], Awaitable[T]], *, join_running: bool = False) -> None:
        self._probe = probe
        self._join_running = join_running
        self._waiting: list[asyncio.Future[T]] = []
        self._running: list[asyncio.Future[T]] | None = None  # the batch being probed
        self._runner: asyncio.Task[None] | None = None

    async def __call__(self) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if self._join_running and self._running is not None:
            self._running.append(future)
            return await future
        self._waiting.append(future)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        """Probe for each batch of callers until nobody waits (a task of its own, so a
        caller that gives up does not cancel the probe the others wait for)."""
        while self._waiting:
            batch, self._waiting = self._waiting, []
            self._running = batch  # joined (`join_running`) until the probe answers
            try:
                result = await self._probe()
            except Exception as exc:
                self._running = None
                for future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException:  # cancelled (shutdown): nobody is left waiting for ever
                self._running = None
                for future in [*batch, *self._waiting]:
                    future.cancel()
                raise
            self._running = None
            for future in batch:
                if not future.done():
                    future.set_result(result)

    async def close(self) -> None:
        """Wait for a running probe (shutdown: nothing may still use the connection)."""
        if self._runner is not None and not self._runner.done():
            await asyncio.gather(self._runner, return_exceptions=True)
