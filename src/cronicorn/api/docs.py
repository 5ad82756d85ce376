"""API documentation: `/api/doc` (OpenAPI 3.1, FastAPI's, completed here), `/api/reference`
(a small interactive page shipped in the package, no CDN) and `/api/llms.txt` (Markdown built
from the OpenAPI document once per process).

The generated document is completed with what FastAPI cannot know: the security schemes the
auth gate accepts, the one error envelope every failure uses (FastAPI would advertise its own
422 shape), and the tag list.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI, Request, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from cronicorn.api.deps import current_reader, current_user, listing

router = APIRouter(include_in_schema=False)

TAGS = [
    {"name": "Jobs", "description": "Containers of endpoints; pausing a job pauses them all."},
    {"name": "Endpoints", "description": "HTTP calls on a cron or interval schedule."},
    {"name": "Adaptive Scheduling", "description": "Hints, pauses and previews of next runs."},
    {"name": "Execution", "description": "Run history and run-now."},
    {"name": "AI Analysis", "description": "What the AI planner looked at and decided."},
    {"name": "Dashboard", "description": "Aggregates over a date range (UTC buckets)."},
    {"name": "Signing Keys", "description": "HMAC keys that sign outbound requests."},
    {"name": "Usage", "description": "This month's usage against the operator's quotas."},
    {"name": "Import/Export", "description": "Jobs and endpoints as a JSON document."},
]
SECURITY_SCHEMES = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "bearerAuth": {"type": "http", "scheme": "bearer"},
    "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "cronicorn_session"},
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
                "requestId": {"type": ["string", "null"]},
            },
        }
    },
}
_ERROR_RESPONSE = {
    "description": "Error (the one envelope)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_DESCRIPTION = """Cronicorn's REST API. Authenticate with an API key (`x-api-key` header), a
bearer token (`Authorization: Bearer …`) or the web UI's session cookie. Another user's
resources answer 404. Errors always use one envelope:
`{"error": {"code", "message", "details", "requestId"}}`; validation errors (422) list the
failing fields in `details` with their JSON paths. Request bodies are strictly typed (a string
is not a number). Optional response fields that are unset are left out (they are not in
`required`); fields that can be `null` say so. Timestamps are ISO-8601 UTC with milliseconds."""


def install(api: FastAPI) -> None:
    """Replace FastAPI's schema generator with the completed one (built once, cached)."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            api.openapi_schema = build_openapi(api)
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


def build_openapi(api: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title="Cronicorn API",
        version=api.version,
        description=_DESCRIPTION,
        routes=api.routes,
        tags=TAGS,
        servers=[{"url": "/api"}],
        license_info={"name": "MIT"},
    )
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES
    for name in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(name, None)
    protected = protected_operation_ids(api)
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            _complete(operation, public=operation.get("operationId") not in protected)
    return doc


def protected_operation_ids(api: FastAPI) -> set[str]:
    """Operation ids of every route whose dependencies include the auth gate."""
    out: set[str] = set()
    for context in routing.iter_route_contexts(api.routes):
        route = context.original_route
        if isinstance(route, routing.APIRoute) and _needs_user(route.dependant):
            out.add(route.operation_id or route.unique_id)
    return out


def _needs_user(dependant: Dependant) -> bool:
    stack = [dependant]
    while stack:
        item = stack.pop()
        if item.call in (current_user, current_reader, listing):
            return True
        stack.extend(item.dependencies)
    return False


def _complete(operation: dict[str, Any], *, public: bool) -> None:
    responses = operation.setdefault("responses", {})
    if "422" in responses:
        responses["422"] = _ERROR_RESPONSE
    responses.setdefault("default", _ERROR_RESPONSE)
    if not public:
        operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
        responses.setdefault("401", _ERROR_RESPONSE)
        if operation.get("parameters") and any(
            p.get("in") == "path" for p in operation["parameters"]
        ):
            responses.setdefault("404", _ERROR_RESPONSE)


def _asset(name: str) -> str:
    return resources.files("cronicorn.api").joinpath("reference", name).read_text("utf-8")


_REFERENCE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


@router.get("/reference")
async def reference() -> HTMLResponse:
    """The interactive API reference (renders /api/doc in the browser)."""
    return HTMLResponse(_asset("index.html"), headers={"Content-Security-Policy": _REFERENCE_CSP})


@router.get("/reference/app.js")
async def reference_js() -> Response:
    return Response(_asset("app.js"), media_type="text/javascript")


@router.get("/reference/app.css")
async def reference_css() -> Response:
    return Response(_asset("app.css"), media_type="text/css")


@router.get("/llms.txt")
async def llms_txt(request: Request) -> PlainTextResponse:
    """The OpenAPI document as Markdown for language models (built once per process)."""
    api: FastAPI = request.app
    cached = getattr(api.state, "llms_txt", None)
    if cached is None:
        cached = render_markdown(api.openapi())
        api.state.llms_txt = cached
    return PlainTextResponse(cached, media_type="text/markdown; charset=utf-8")


# -- Markdown rendering ---------------------------------------------------------------------
def render_markdown(doc: dict[str, Any]) -> str:
    info = doc.get("info", {})
    lines = [f"# {info.get('title', 'API')} {info.get('version', '')}".rstrip(), ""]
    lines += [f"> {info.get('description', '').replace(chr(10), ' ')}", ""]
    base = (doc.get("servers") or [{"url": ""}])[0]["url"]
    schemas = doc.get("components", {}).get("schemas", {})
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, operations in doc.get("paths", {}).items():
        for method, op in operations.items():
            tag = (op.get("tags") or ["Other"])[0]
            by_tag.setdefault(tag, []).append((method.upper(), base + path, op))
    order = [t["name"] for t in doc.get("tags", [])]
    for tag in sorted(by_tag, key=lambda t: (order.index(t) if t in order else len(order), t)):
        lines += [f"## {tag}", ""]
        for method, path, op in by_tag[tag]:
            lines += _operation_md(method, path, op, schemas)
    lines += ["## Schemas", ""]
    for name, schema in sorted(schemas.items()):
        lines += [f"### {name}", "", *_fields_md(schema, schemas), ""]
    return "\n".join(lines).rstrip() + "\n"


def _operation_md(method: str, path: str, op: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    lines = [f"### {method} {path}", ""]
    if op.get("summary"):
        lines += [op["summary"], ""]
    if op.get("description"):
        lines += [op["description"], ""]
    params = op.get("parameters", [])
    if params:
        lines.append("Parameters:")
        for p in params:
            required = " (required)" if p.get("required") else ""
            kind = _type_of(p.get("schema", {}), schemas)
            lines.append(f"- `{p['name']}` in {p['in']}: {kind}{required}")
        lines.append("")
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    if body:
        lines += ["Body:", *_fields_md(body.get("schema", {}), schemas), ""]
    for status, response in op.get("responses", {}).items():
        if status.startswith("2"):
            content = response.get("content", {}).get("application/json", {})
            shape = _type_of(content["schema"], schemas) if content else "no content"
            lines += [f"Returns {status}: {shape}", ""]
    return lines


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        resolved: dict[str, Any] = schemas.get(ref.rsplit("/", 1)[-1], {})
        return resolved
    return schema


def _type_of(schema: dict[str, Any], schemas: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type_of(s, schemas) for s in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if schema.get("type") == "array":
        return f"array of {_type_of(schema.get('items', {}), schemas)}"
    kind = schema.get("type", "any")
    fmt = schema.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


def _fields_md(schema: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    resolved = _resolve(schema, schemas)
    required = set(resolved.get("required", []))
    out = []
    for name, prop in resolved.get("properties", {}).items():
        mark = " (required)" if name in required else ""
        out.append(f"- `{name}`: {_type_of(prop, schemas)}{mark}")
    return out or [f"- {_type_of(schema, schemas)}"]
