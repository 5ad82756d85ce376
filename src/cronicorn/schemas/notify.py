"""Channels, subscriptions (`notify` settings) and audit entries, for every face."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from cronicorn.schemas.common import Absent, In, NonBlank, Out, Text, UtcDatetime

ChannelName = Annotated[NonBlank, Field(max_length=100)]
ChannelUrlText = Annotated[Text, Field(min_length=1, max_length=2048)]


class ChannelCreate(In):
    name: ChannelName
    url: ChannelUrlText
    test: bool = True  # send a test message first; a failed test stores nothing


class ChannelPatch(In):
    name: ChannelName | None = None
    url: ChannelUrlText | None = None


class ChannelOut(Out):
    """A channel; the URL itself (tokens, passwords) is never returned, only Apprise's
    privacy preview."""

    id: str
    name: str
    kind: str
    url_preview: str
    failing: bool
    last_success_at: Absent[UtcDatetime] = None
    last_error_at: Absent[UtcDatetime] = None
    last_error: Absent[str] = None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class ChannelList(Out):
    channels: list[ChannelOut]


class Delivery(Out):
    at: UtcDatetime
    ok: bool
    events: int
    duration_ms: int | None
    error: str | None


class ChannelDetail(ChannelOut):
    deliveries: list[Delivery]


class ChannelTestResult(Out):
    ok: bool
    error: Absent[str] = None


class NotifySettings(In):
    """Who hears about a job's (or one endpoint's) runs, and when."""

    channels: Annotated[list[Annotated[Text, Field(max_length=64)]], Field(max_length=20)]
    on_failure_after: Annotated[int, Field(ge=1, le=1000)] = 1
    on_recovery: bool = True
    reminder_hours: Annotated[float, Field(ge=0, le=720)] = 0
    slower_than_ms: Annotated[int, Field(ge=1, le=86_400_000)] | None = None

    def stored(self) -> dict[str, Any]:
        """The JSON kept in `jobs.notify` / `endpoints.notify` (camelCase, as returned)."""
        return self.model_dump(by_alias=True)


class NotifyBody(In):
    notify: NotifySettings | None


class NotifyOut(Out):
    notify: dict[str, Any] | None


AccountEvent = Literal["backup_failed"]


class AccountNotifySettings(In):
    """Account-level events (not tied to a job) and which of your channels hear them. Today
    one event: `backup_failed`, a scheduled backup (or its verification) failed; admins
    only."""

    channels: Annotated[list[Annotated[Text, Field(max_length=64)]], Field(max_length=20)]
    events: Annotated[list[AccountEvent], Field(min_length=1, max_length=10)] = ["backup_failed"]

    def stored(self) -> dict[str, Any]:
        return {
            "channels": list(dict.fromkeys(self.channels)),
            "events": list(dict.fromkeys(self.events)),
        }


class AccountNotifyBody(In):
    notify: AccountNotifySettings | None


class AccountNotifyOut(Out):
    notify: dict[str, Any] | None


class AuditActor(Out):
    kind: str
    id: Absent[str] = None
    name: Absent[str] = None


class AuditEntry(Out):
    id: str
    at: UtcDatetime
    actor: AuditActor
    action: str
    entity: str
    entity_id: str
    changes: dict[str, Any]
    request_id: Absent[str] = None


class AuditPage(Out):
    entries: list[AuditEntry]
    next_cursor: str | None


TestResult = ChannelTestResult  # the earlier name (the OpenAPI name must not clash with runs')
