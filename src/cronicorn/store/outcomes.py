"""Recent run outcomes per endpoint, for the pages' sparklines and "last status" columns.

One statement for any number of endpoints: a LATERAL read of each endpoint's newest runs on
`ix_runs_endpoint_id_started_at` (an index range per endpoint, never a scan of its history).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

RECENT_SQL = text(
    """
SELECT e.id AS endpoint_id, r.status, r.started_at
FROM endpoints e
CROSS JOIN LATERAL (
    SELECT status, started_at FROM runs
    WHERE runs.endpoint_id = e.id
    ORDER BY started_at DESC
    LIMIT :per
) AS r
WHERE e.id = ANY(CAST(:ids AS text[])) AND e.user_id = :user_id
"""
)


@dataclass(frozen=True)
class Recent:
    statuses: list[str]  # oldest first
    last_status: str | None
    last_at: datetime | None


async def recent_outcomes(
    conn: AsyncConnection, user_id: str, endpoint_ids: Sequence[str], per: int = 20
) -> dict[str, Recent]:
    """The last `per` outcomes of each of the user's endpoints (another user's ids give
    nothing: ownership is checked on the endpoint row)."""
    if not endpoint_ids:
        return {}
    rows = await conn.execute(
        RECENT_SQL, {"ids": list(endpoint_ids), "user_id": user_id, "per": per}
    )
    newest_first: dict[str, list[tuple[str, datetime]]] = {}
    for endpoint_id, status, started_at in rows.all():
        newest_first.setdefault(endpoint_id, []).append((status, started_at))
    out = {}
    for endpoint_id in endpoint_ids:
        found = newest_first.get(endpoint_id, [])
        out[endpoint_id] = Recent(
            statuses=[status for status, _ in reversed(found)],
            last_status=found[0][0] if found else None,
            last_at=found[0][1] if found else None,
        )
    return out
