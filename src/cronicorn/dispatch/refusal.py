"""Why a URL would be refused, asked before it is stored (create, edit, import)."""

from __future__ import annotations

from cronicorn.dispatch.dispatcher import Dispatcher
from cronicorn.dispatch.ssrf import UrlNotAllowed


async def url_refusal(dispatcher: Dispatcher, url: str) -> str | None:
    """Why the dispatcher would refuse this URL (scheme, blocked address, a name resolving to
    one), or None. A name that does not resolve yet passes: the service may not be up. The
    dispatcher's resolver caches answers and merges concurrent lookups of one name."""
    try:
        await dispatcher.check_url(url)
    except UrlNotAllowed as exc:
        return exc.reason
    return None
