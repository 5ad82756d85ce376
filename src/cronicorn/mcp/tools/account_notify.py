"""Account-level subscriptions (as `GET/PUT /api/account/notify`): which of an admin's
channels hear of failed scheduled backups, through `notify.service`. Only administrators:
anyone else gets the API's 403. The user's row is read at call time, so a demotion takes
effect at once."""

from __future__ import annotations

from typing import Any

from cronicorn.mcp.errors import ToolError
from cronicorn.mcp.tooling import Call, NoArguments, Tool
from cronicorn.notify import service
from cronicorn.schemas.notify import AccountNotifyBody, AccountNotifyOut
from cronicorn.store import users

FORBIDDEN = "Administrator rights required"


async def _require_admin(call: Call) -> None:
    user = await users.get_by_id(call.conn, call.user_id)
    if user is None or not user.is_admin:
        raise ToolError(403, "forbidden", FORBIDDEN)


async def _get(call: Call, _: NoArguments) -> AccountNotifyOut:
    await _require_admin(call)
    return await service.account_notify_of(call.conn, call.user_id)


async def _set(call: Call, body: AccountNotifyBody) -> AccountNotifyOut:
    await _require_admin(call)
    return await service.subscribe_account(call.conn, call.user_id, body, now=call.now)


TOOLS: list[Tool[Any]] = [
    Tool(
        "getAccountNotify",
        "Backup failure alerts",
        "Administrators: which of your channels hear account-level events (today "
        "`backup_failed`: a scheduled backup, its verification or its off-site copy "
        "failed); null: not subscribed.",
        NoArguments,
        _get,
        output=AccountNotifyOut,
        read_only=True,
    ),
    Tool(
        "setAccountNotify",
        "Set backup failure alerts",
        "Administrators: `notify`: {channels: [your channel ids, from listChannels], "
        'events: ["backup_failed"] (the default)}; null unsubscribes.',
        AccountNotifyBody,
        _set,
        output=AccountNotifyOut,
        idempotent=True,
    ),
]
