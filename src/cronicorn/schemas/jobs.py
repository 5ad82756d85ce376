"""Jobs: request and response models."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema, field_validator

from cronicorn.schemas.common import Absent, In, NonBlank, Out, Text, UtcDatetime
from cronicorn.store.jobs import JobRow
from cronicorn.store.json_sql import JsonField

JobName = Annotated[NonBlank, Field(min_length=1, max_length=255)]
JobDescription = Annotated[Text, Field(max_length=1000)]
JobAiMode = Literal["off", "suggest", "auto"]


class JobCreate(In):
    name: JobName
    description: JobDescription | None = None
    ai_mode: JobAiMode = Field(
        default="auto",
        description="The AI planner's default for endpoints with aiMode inherit",
    )


class JobPatch(In):
    """Both fields optional; `description: null` clears it, `name` cannot be cleared."""

    name: Annotated[
        JobName | None, WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 255})
    ] = None
    description: JobDescription | None = None
    ai_mode: Annotated[
        JobAiMode | None, WithJsonSchema({"type": "string", "enum": ["off", "suggest", "auto"]})
    ] = None

    @field_validator("ai_mode")
    @classmethod
    def _mode_not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("aiMode cannot be null")
        return value

    @field_validator("name")
    @classmethod
    def _name_not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("name cannot be null")
        return value


class Job(Out):
    id: str
    user_id: str
    name: str
    description: Absent[str] = None
    status: Literal["active", "paused", "archived"]
    created_at: UtcDatetime
    updated_at: UtcDatetime
    archived_at: Absent[UtcDatetime] = None
    ai_mode: str = Field(description="off | suggest | auto: the AI planner's default")

    @classmethod
    def fields_of(cls, row: JobRow) -> dict[str, Any]:
        return {
            "id": row.id,
            "user_id": row.user_id,
            "name": row.name,
            "description": row.description,
            "status": row.status,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
            "archived_at": row.archived_at,
            "ai_mode": row.ai_mode,
        }

    @classmethod
    def of(cls, row: JobRow) -> Job:
        return cls(**cls.fields_of(row))


class JobWithCount(Job):
    endpoint_count: int = Field(description="Archived endpoints included")

    @classmethod
    def counted(cls, row: JobRow, endpoint_count: int) -> JobWithCount:
        return cls(**cls.fields_of(row), endpoint_count=endpoint_count)


class JobList(Out):
    jobs: list[JobWithCount]


# `JobWithCount` as PostgreSQL writes it for the hot `GET /api/jobs` (`store.json_sql`;
# tests/api/test_fast_lists.py compares it with the model's JSON), in the model's field order.
JOB_ITEM_JSON = (
    JsonField("id", "id", "text"),
    JsonField("userId", "user_id", "text"),
    JsonField("name", "name", "text"),
    JsonField("description", "description", "text", optional=True),
    JsonField("status", "status", "text"),
    JsonField("createdAt", "created_at", "time"),
    JsonField("updatedAt", "updated_at", "time"),
    JsonField("archivedAt", "archived_at", "time", optional=True),
    JsonField("aiMode", "ai_mode", "text"),
    JsonField("endpointCount", "endpoint_count", "int"),
)
