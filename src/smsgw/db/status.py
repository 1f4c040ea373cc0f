"""The ``gateway_status`` row: the supervisor's latest report, read by `smsgw status`."""

from __future__ import annotations

from typing import Any

import orjson
import psycopg


def publish(
    conn: psycopg.Connection[Any], deployment: str, snapshot: dict[str, Any], report: dict[str, Any]
) -> None:
    conn.execute(
        "INSERT INTO gateway_status (deployment, snapshot, report, updated_at)"
        " VALUES (%s, %s, %s, now()) ON CONFLICT (deployment) DO UPDATE SET"
        " snapshot = EXCLUDED.snapshot, report = EXCLUDED.report, updated_at = now()",
        (
            deployment,
            orjson.dumps(snapshot, default=str).decode(),
            orjson.dumps(report, default=str).decode(),
        ),
    )


def read(
    conn: psycopg.Connection[Any], deployment: str
) -> tuple[dict[str, Any], dict[str, Any], float] | None:
    """(snapshot, report, age in seconds), or None if no supervisor ever reported."""
    row = conn.execute(
        "SELECT snapshot, report, extract(epoch FROM now() - updated_at)"
        " FROM gateway_status WHERE deployment = %s",
        (deployment,),
    ).fetchone()
    if row is None:
        return None
    return dict(row[0]), dict(row[1]), float(row[2])
