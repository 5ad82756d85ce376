"""An endpoint URL's SSRF check when it is set (create, edit), for every face: a URL that
could never run is refused now, as `Invalid` on its field, rather than failing later."""

from __future__ import annotations

from cronicorn.dispatch import Dispatcher, url_refusal
from cronicorn.store.errors import Invalid


async def ensure_url_allowed(dispatcher: Dispatcher, url: str, field: str = "url") -> None:
    """`Invalid(field, "URL not allowed: …")` when the dispatcher's SSRF guard refuses `url`."""
    reason = await url_refusal(dispatcher, url)
    if reason is not None:
        raise Invalid(field, f"URL not allowed: {reason}")
