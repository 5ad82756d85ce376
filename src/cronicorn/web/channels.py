"""`/settings/channels`: notification channels (one Apprise URL each) on the settings page.
Adding one runs the same checks as `POST /api/channels` (`notify.service.add_channel`):
Apprise must understand the URL, the SSRF guard must allow its host, and a test message is
sent first unless the box is unticked; any refusal is shown next to the field and nothing
is stored. The URL is never shown again, only Apprise's privacy preview.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from cronicorn.notify import service
from cronicorn.notify.urls import InvalidChannelUrl
from cronicorn.schemas.notify import ChannelCreate
from cronicorn.store import channels as channel_store
from cronicorn.store.errors import Conflict
from cronicorn.web.deps import (
    ClockDep,
    ConnDep,
    DispatcherDep,
    FormDep,
    RuntimeDep,
    ViewerDep,
    require_id,
)
from cronicorn.web.forms import model_errors
from cronicorn.web.settings import act_as, settings_response

router = APIRouter(prefix="/settings/channels")


@router.post("")
async def add_channel(
    request: Request,
    viewer: ViewerDep,
    form: FormDep,
    conn: ConnDep,
    clock: ClockDep,
    runtime: RuntimeDep,
    dispatcher: DispatcherDep,
) -> Response:
    now = clock()
    values = {"channel_name": form.get("channel_name", ""), "channel_url": ""}
    values["channel_test"] = "on" if form.get("channel_test") else ""
    try:
        body = ChannelCreate.model_validate(
            {
                "name": form.get("channel_name", ""),
                "url": form.get("channel_url", ""),
                "test": bool(form.get("channel_test")),
            }
        )
    except ValidationError as exc:
        errors = {f"channel_{k}": v for k, v in model_errors(exc, ChannelCreate).items()}
        return await settings_response(request, viewer, conn, now, 422, errors, values)
    try:
        await act_as(conn, viewer)
        await service.add_channel(
            conn, viewer.user_id, body, runtime=runtime, dispatcher=dispatcher, now=now
        )
    except InvalidChannelUrl as exc:
        errors = {"channel_url": f"Not usable: {exc.reason}"}
    except service.TransportError as exc:
        errors = {"channel_url": f"The test message failed: {exc.message}"}
    except Conflict as exc:
        errors = {"channel_name": str(exc)}
    else:
        return RedirectResponse("/settings?done=channel-added#channels", status_code=303)
    await conn.rollback()
    return await settings_response(request, viewer, conn, now, 422, errors, values)


@router.post("/{channel_id}/delete")
async def delete_channel(
    channel_id: str, viewer: ViewerDep, form: FormDep, conn: ConnDep
) -> Response:
    await act_as(conn, viewer)
    await channel_store.delete_channel(conn, viewer.user_id, require_id(channel_id, "Channel"))
    return RedirectResponse("/settings?done=channel-removed#channels", status_code=303)
