"""The ``message_event`` table: day partitions, batched writes and the lookups.

Rows arrive in batches from the history stage (COPY into a temporary table,
then one ``INSERT … ON CONFLICT DO NOTHING``, so a batch replayed after a
crash adds nothing). Retention drops whole day partitions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

import orjson
import psycopg
from psycopg import sql

from smsgw.history import COLUMNS, Event
from smsgw.provider_ids import FORMATS, receipt_key

_PART = re.compile(r"^message_event_(\d{8})$")


def _day(at: dt.datetime | dt.date) -> dt.date:
    return at.date() if isinstance(at, dt.datetime) else at


def partition_name(day: dt.date) -> str:
    return f"message_event_{day:%Y%m%d}"


def existing_days(conn: psycopg.Connection[Any]) -> set[dt.date]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'message_event'::regclass"
    ).fetchall()
    out = set()
    for (name,) in rows:
        m = _PART.match(name)
        if m:
            out.add(dt.datetime.strptime(m.group(1), "%Y%m%d").date())
    return out


def ensure_days(conn: psycopg.Connection[Any], days: Iterable[dt.date]) -> None:
    """Create the day partitions that are missing (UTC days)."""
    for day in sorted(set(days)):
        lo = dt.datetime.combine(day, dt.time(), dt.UTC)
        hi = lo + dt.timedelta(days=1)
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF message_event"
                " FOR VALUES FROM ({}) TO ({})"
            ).format(sql.Identifier(partition_name(day)), sql.Literal(lo), sql.Literal(hi))
        )


def drop_before(conn: psycopg.Connection[Any], keep_days: int, today: dt.date) -> list[str]:
    """Drop day partitions older than ``keep_days`` (retention); returns their names."""
    cutoff = today - dt.timedelta(days=keep_days)
    dropped = []
    for day in sorted(existing_days(conn)):
        if day < cutoff:
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(partition_name(day)))
            )
            dropped.append(partition_name(day))
    return dropped


def write(conn: psycopg.Connection[Any], events: list[Event], known: set[dt.date]) -> int:
    """Write one batch in one transaction; ``known`` caches the partitions made so far."""
    if not events:
        return 0
    rows = [e.row() for e in events]
    days = {_day(r[0]) for r in rows} - known
    with conn.transaction():
        if days:
            ensure_days(conn, days)
            known |= days
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS message_event_batch"
            " (LIKE message_event INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with conn.cursor().copy(
            f"COPY message_event_batch ({', '.join(COLUMNS)}) FROM STDIN"
        ) as copy:
            for r in rows:
                copy.write_row(r)
        cur = conn.execute(
            f"INSERT INTO message_event ({', '.join(COLUMNS)})"
            f" SELECT {', '.join(COLUMNS)} FROM message_event_batch ON CONFLICT DO NOTHING"
        )
        return cur.rowcount


def _event(row: tuple[Any, ...]) -> Event:
    at, mid, kind, customer, provider, ref, state, error, detail, src = row
    if isinstance(detail, str | bytes):
        detail = orjson.loads(detail)
    return Event(at.timestamp(), mid, kind, src, customer, provider, ref, state, error, detail)


_SELECT = f"SELECT {', '.join(COLUMNS)} FROM message_event"


def history(conn: psycopg.Connection[Any], message_id: str) -> list[Event]:
    """Every row of one message: its own, then those joined through its refs (the
    provider's receipt by provider key, the customer's answer by delivery id)."""
    own = [_event(r) for r in conn.execute(f"{_SELECT} WHERE message_id = %s", (message_id,))]
    refs = sorted({e.ref for e in own if e.ref})
    if refs:
        own += [
            _event(r)
            for r in conn.execute(f"{_SELECT} WHERE ref = ANY(%s) AND message_id = ''", (refs,))
        ]
    return own


def by_provider_id(conn: psycopg.Connection[Any], provider: str, provider_id: str) -> list[str]:
    """Gateway ids the provider's message id was given to, the id as the provider wrote it.

    The pairing key holds the id normalised by the provider's id format; every
    format's reading is a candidate key (an index lookup), and the id as sent
    must match too, so a hex id read as decimal never finds another message.
    """
    keys = {f"{provider}:{provider_id.strip()}"}
    for fmt in FORMATS:
        with contextlib.suppress(ValueError):
            keys.add(receipt_key(provider, provider_id, fmt))
    rows = conn.execute(
        "SELECT DISTINCT message_id FROM message_event WHERE ref = ANY(%s)"
        " AND kind = 'sent' AND detail->>'provider_id' = %s",
        (sorted(keys), provider_id.strip()),
    ).fetchall()
    return [r[0] for r in rows]


def find(
    conn: psycopg.Connection[Any],
    customer: str,
    since: dt.datetime,
    *,
    states: tuple[int, ...] = (),
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The customer's messages accepted since ``since``, newest first, with their
    latest state (final states win over later non-final ones); ``states``
    keeps only those whose state is one of them."""
    # One range scan of the (customer, at) index: the acceptances and state rows of
    # the window, folded per message in SQL.
    sql = """
        SELECT * FROM (
            SELECT message_id,
                   min(at) FILTER (WHERE kind = 'accepted') AS accepted_at,
                   max(detail->>'dst') FILTER (WHERE kind = 'accepted') AS dst,
                   (array_agg(ARRAY[state::int, error]
                              ORDER BY state NOT IN (1, 6, 7) DESC, at DESC)
                        FILTER (WHERE kind = 'state'))[1:1] AS latest,
                   (array_agg(detail->>'stage' ORDER BY state NOT IN (1, 6, 7) DESC, at DESC)
                        FILTER (WHERE kind = 'state'))[1] AS stage,
                   max(at) FILTER (WHERE kind = 'state') AS updated_at
            FROM message_event
            WHERE customer = %(c)s AND at >= %(since)s AND kind IN ('accepted', 'state')
            GROUP BY message_id
            HAVING bool_or(kind = 'accepted')
        ) m
        WHERE %(any)s OR coalesce(latest[1][1], 1) = ANY(%(states)s)
        ORDER BY accepted_at DESC
        LIMIT %(limit)s
    """
    params = {
        "c": customer,
        "since": since,
        "any": not states,
        "states": list(states),
        "limit": limit,
    }
    return [
        {
            "id": r[0],
            "accepted_at": r[1].timestamp(),
            "destination": r[2] or "",
            "state": r[3][0][0] if r[3] else 1,
            "error": r[3][0][1] if r[3] else 0,
            "stage": r[4] or "accepted",
            "updated_at": r[5].timestamp() if r[5] else None,
        }
        for r in conn.execute(sql, params)
    ]
