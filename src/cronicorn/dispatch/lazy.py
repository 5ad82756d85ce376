"""One dispatcher per app, made on first use and kept on the app's state object: the API and
the pages each hold one (their Depends wrappers pass `request.app.state`), and close it at
shutdown. Framework-free, so it lives below the faces."""

from __future__ import annotations

from typing import Any

from cronicorn.dispatch.dispatcher import Dispatcher
from cronicorn.dispatch.models import DispatchConfig


async def dispatcher_on(state: Any, config: DispatchConfig) -> Dispatcher:
    """`state.dispatcher`, started with `config` if there is none yet; two first requests
    that race both start one, and the loser closes its own."""
    dispatcher: Dispatcher | None = getattr(state, "dispatcher", None)
    if dispatcher is not None:
        return dispatcher
    fresh = Dispatcher(config)
    await fresh.start()
    current: Dispatcher | None = getattr(state, "dispatcher", None)
    if current is not None:  # another request won the race meanwhile
        await fresh.close()
        return current
    state.dispatcher = fresh
    return fresh


async def close_dispatcher_on(state: Any) -> None:
    """Close the dispatcher `dispatcher_on` kept on `state`, if any (process shutdown)."""
    dispatcher: Dispatcher | None = getattr(state, "dispatcher", None)
    state.dispatcher = None
    if dispatcher is not None:
        await dispatcher.close()
