"""Parameters shared by the routers: this request's "now" and path ids."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import Depends

from cronicorn.api.deps import Clock, get_clock
from cronicorn.api.errors import ApiError

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def require_id(value: str, what: str) -> str:
    """Path ids that cannot exist are a 404 like any unknown id (not a 422 or a 500)."""
    if _ID.fullmatch(value) is None:
        raise ApiError(404, f"{what} not found")
    return value


async def get_now(clock: Annotated[Clock, Depends(get_clock)]) -> datetime:
    """This request's "now", read once from the app's clock (`deps.set_clock` in tests)."""
    return clock()


NowDep = Annotated[datetime, Depends(get_now)]
