"""How a tool is declared and called: one `Tool` per REST operation (the original's ADR 0041),
its input schema built from the same pydantic models as the REST route.

A tool's arguments are the route's path ids plus its request body (or its query, for reads),
flat, as the original's tools took them. The path ids are checked on their own and the rest is
validated by the route's own model in JSON mode, so every rule, alias and message is the API's.
The advertised JSON schema is that model's schema with the ids added.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import mcp.types as types
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.dispatch import Dispatcher
from cronicorn.mcp.errors import ToolError
from cronicorn.mcp.notes import annotate
from cronicorn.runtime import Runtime
from cronicorn.schemas.common import In
from cronicorn.store.errors import NotFound

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 64}


class NoArguments(In):
    """A tool that takes nothing but its path ids (if any)."""


B = TypeVar("B", bound=BaseModel)


@dataclass
class Call:
    """What a tool runs with: the caller's scope, one connection, this call's instant."""

    runtime: Runtime
    conn: AsyncConnection
    user_id: str
    now: datetime
    dispatcher: Callable[[], Awaitable[Dispatcher]]
    ids: dict[str, str] = field(default_factory=dict)

    def id(self, name: str) -> str:
        return self.ids[name]


Result = BaseModel | Mapping[str, Any]
Handler = Callable[[Call, Any], Awaitable[Result]]


@dataclass(frozen=True)
class PathId:
    name: str  # the argument name, as the original's tools had it (`id`, `jobId`)
    what: str  # "Job", "Endpoint", …: the resource a wrong id is "not found"
    description: str


@dataclass(frozen=True)
class Tool(Generic[B]):
    name: str
    title: str
    description: str
    body: type[B]
    run: Callable[[Call, B], Awaitable[Result]]
    ids: tuple[PathId, ...] = ()
    output: type[BaseModel] | None = None
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    open_world: bool = False  # calls the user's endpoint (run now)

    def input_schema(self) -> dict[str, Any]:
        schema = self.body.model_json_schema(by_alias=True)
        schema.pop("title", None)
        schema.pop("description", None)
        properties = {pid.name: {**ID_SCHEMA, "description": pid.description} for pid in self.ids}
        properties.update(schema.get("properties", {}))
        schema["properties"] = properties
        required = [pid.name for pid in self.ids] + list(schema.get("required", []))
        if required:
            schema["required"] = required
        schema["type"] = "object"
        return annotate(schema)

    def listing(self) -> types.Tool:
        output = None
        if self.output is not None:
            output = self.output.model_json_schema(by_alias=True, mode="serialization")
        return types.Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.input_schema(),
            output_schema=output,
            annotations=types.ToolAnnotations(
                title=self.title,
                read_only_hint=self.read_only,
                destructive_hint=self.destructive if not self.read_only else None,
                idempotent_hint=self.idempotent if not self.read_only else None,
                open_world_hint=self.open_world,
            ),
        )

    def parse(self, arguments: Mapping[str, Any] | None) -> tuple[dict[str, str], B]:
        """(path ids, the validated body); a malformed id is "not found", as on `/api`."""
        rest = dict(arguments or {})
        ids: dict[str, str] = {}
        for pid in self.ids:
            value = rest.pop(pid.name, None)
            if value is None:
                raise ToolError(
                    422,
                    "validation_error",
                    f"Field required at '{pid.name}'",
                    [{"path": pid.name, "in": "arguments", "message": "Field required"}],
                    pid.name,
                )
            if not isinstance(value, str) or _ID.fullmatch(value) is None:
                raise NotFound(pid.what)
            ids[pid.name] = value
        return ids, self.body.model_validate_json(json.dumps(rest))


def reply(result: Result) -> types.CallToolResult:
    """A successful result: the JSON as text (for clients that ignore structured content)
    and as `structuredContent`."""
    if isinstance(result, BaseModel):
        data = result.model_dump(mode="json", by_alias=True)
    else:
        data = dict(result)
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return types.CallToolResult(
        content=[types.TextContent(text=text)], structured_content=data, is_error=False
    )
