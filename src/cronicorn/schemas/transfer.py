"""The import/export document: jobs with their endpoints, in the API's own JSON shapes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from cronicorn.schemas.common import In, InDatetime, Out, Text
from cronicorn.schemas.endpoints import EndpointCreate
from cronicorn.schemas.jobs import JobAiMode, JobDescription, JobName
from cronicorn.schemas.notify import ChannelName, NotifySettings

MAX_JOBS = 1000
MAX_ENDPOINTS_PER_JOB = 1000


class TransferNotify(NotifySettings):
    """A job's or an endpoint's `notify` settings with channels named, not by id: ids differ
    between accounts and installations, and a channel's URL holds secrets, so channels are
    never exported; an import refers to the importing account's channels by name."""

    channels: Annotated[list[ChannelName], Field(max_length=20)]


class TransferChannel(In):
    """A channel the document's settings name (information for whoever imports it: create
    it first, with your own URL)."""

    name: ChannelName
    kind: Annotated[Text, Field(max_length=40)] | None = None


class TransferEndpoint(EndpointCreate):
    notify: TransferNotify | None = None


class TransferJob(In):
    name: JobName
    description: JobDescription | None = None
    status: Literal["active", "paused"] = "active"
    ai_mode: JobAiMode = "auto"
    notify: TransferNotify | None = None
    endpoints: Annotated[list[TransferEndpoint], Field(max_length=MAX_ENDPOINTS_PER_JOB)] = []

    @model_validator(mode="after")
    def _unique_endpoints(self) -> TransferJob:
        names = [e.name for e in self.endpoints]
        if len(names) != len(set(names)):
            raise ValueError("endpoint names must be unique within a job")
        return self


class TransferDocument(In):
    """`version` 1. Jobs are matched by name, endpoints by name within their job."""

    version: Literal[1] = 1
    exported_at: InDatetime | None = None
    channels: Annotated[list[TransferChannel], Field(max_length=1000)] = []
    jobs: Annotated[list[TransferJob], Field(max_length=MAX_JOBS)]

    @model_validator(mode="after")
    def _unique_jobs(self) -> TransferDocument:
        names = [j.name for j in self.jobs]
        if len(names) != len(set(names)):
            raise ValueError("job names must be unique in the document")
        return self


class Action(Out):
    kind: Literal["job", "endpoint"]
    job: str
    name: str
    action: Literal["create", "update", "unchanged"]
    changes: list[str] = Field(description="Fields that change (camelCase), for updates")


class Tally(Out):
    jobs: int = 0
    endpoints: int = 0


class ImportReport(Out):
    dry_run: bool
    created: Tally
    updated: Tally
    unchanged: Tally
    actions: list[Action]
