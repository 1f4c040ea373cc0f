"""How fast `smsgw message show|find` answers with 10 million history rows.

Fills ``message_event`` (the real schema, its migrations and day partitions)
with the seven rows a delivered message leaves (accepted, routed, sent, the
provider's receipt, state, deliver, delivered), spread over three days and
100 customers, generated inside PostgreSQL in chunks; then times the
lookups the CLI makes. Stops filling at ``--budget-s`` and says how far it
got.

    .venv/bin/python -m benchmarks.history_store                 # embedded PostgreSQL
    .venv/bin/python -m benchmarks.history_store --rows 1000000 --database-url postgresql://…
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from smsgw.db import history as store
from smsgw.db.migrate import migrate

ROWS_PER_MESSAGE = 7
CUSTOMERS = 100
PROVIDERS = 5
SPAN_S = 3 * 86400
CHUNK = 100_000  # messages per INSERT … SELECT

# One INSERT per event kind; %(lo)s..%(hi)s are message numbers, %(t0)s the first
# message's time and %(step)s seconds between messages.
_KINDS = {
    "accepted": (
        "'m' || lpad(n::text, 10, '0')", "'accepted'", "'c' || lpad((n %% 100)::text, 3, '0')",
        "''", "''", "0", "0",
        """jsonb_build_object('src', 'ACME', 'dst', (491700000000 + n)::text,
           'bind', 'node/1', 'command', 'submit_sm')""", "0.000",
    ),
    "routed": (
        "'m' || lpad(n::text, 10, '0')", "'routed'", "'c' || lpad((n %% 100)::text, 3, '0')",
        "'p' || (n %% 5)", "''", "0", "0", "jsonb_build_object('failover', '[]'::jsonb)", "0.030",
    ),
    "sent": (
        "'m' || lpad(n::text, 10, '0')", "'sent'", "'c' || lpad((n %% 100)::text, 3, '0')",
        "'p' || (n %% 5)", "'p' || (n %% 5) || ':' || n", "0", "0",
        "jsonb_build_object('provider_id', to_hex(n), 'bind', 'provider:p' || (n %% 5) || '#0')",
        "0.060",
    ),
    "receipt": (
        "''", "'receipt'", "''", "'p' || (n %% 5)", "'p' || (n %% 5) || ':' || n",
        "2", "0", "jsonb_build_object('provider_id', to_hex(n), 'err', '000')", "2.000",
    ),
    "state": (
        "'m' || lpad(n::text, 10, '0')", "'state'", "'c' || lpad((n %% 100)::text, 3, '0')",
        "''", "''", "CASE WHEN n %% 20 = 0 THEN 5 ELSE 2 END", "0",
        "jsonb_build_object('stage', 'receipt')", "2.010",
    ),
    "deliver": (
        "'m' || lpad(n::text, 10, '0')", "'deliver'", "'c' || lpad((n %% 100)::text, 3, '0')",
        "''", "'dlv:r:' || n", "2", "0", "'{}'::jsonb", "2.020",
    ),
    "delivered": (
        "''", "'delivered'", "''", "''", "'dlv:r:' || n", "0", "0",
        "jsonb_build_object('outcome', 'delivered')", "2.100",
    ),
}  # fmt: skip


def _insert_sql(kind: str) -> str:
    mid, k, customer, provider, ref, state, error, detail, delay = _KINDS[kind]
    return f"""
        INSERT INTO message_event (at, message_id, kind, customer, provider, ref, state,
                                   error, detail, src)
        SELECT to_timestamp(%(t0)s + n * %(step)s + {delay}), {mid}, {k}, {customer},
               {provider}, {ref}, {state}, {error}, {detail}, 'bench:{kind}:' || n
        FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS n
    """


def fill(url: str, rows: int, budget_s: float) -> dict[str, Any]:
    messages = rows // ROWS_PER_MESSAGE
    step = SPAN_S / max(messages, 1)
    t0 = time.time() - SPAN_S
    start = time.monotonic()
    done = 0
    with psycopg.connect(url, autocommit=True) as conn:
        first = dt.datetime.fromtimestamp(t0, dt.UTC).date()
        store.ensure_days(conn, [first + dt.timedelta(days=i) for i in range(5)])
        while done < messages and time.monotonic() - start < budget_s:
            hi = min(done + CHUNK, messages) - 1
            with conn.transaction():
                for kind in _KINDS:
                    conn.execute(
                        _insert_sql(kind),  # type: ignore[arg-type]
                        {"lo": done, "hi": hi, "t0": t0, "step": step},
                    )
            done = hi + 1
            print(
                f"filled {done * ROWS_PER_MESSAGE:>11,} rows "
                f"({done / (time.monotonic() - start):,.0f} messages/s)",
                flush=True,
            )
        conn.execute("ANALYZE message_event")
    return {
        "rows_wanted": rows,
        "rows": done * ROWS_PER_MESSAGE,
        "messages": done,
        "fill_s": round(time.monotonic() - start, 1),
        "complete": done >= messages,
        "step": step,
        "t0": t0,
    }


def _timed(fn: Callable[[], Any], n: int) -> dict[str, float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
        "max_ms": round(times[-1], 2),
    }


def lookups(url: str, filled: dict[str, Any], n: int) -> dict[str, Any]:
    messages = filled["messages"]
    rng = random.Random(1)
    out: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        ids = [f"m{rng.randrange(messages):010d}" for _ in range(n)]
        it = iter(ids)
        got = store.history(conn, ids[0])
        assert len(got) == ROWS_PER_MESSAGE, got
        out["show"] = _timed(lambda: store.history(conn, next(it)), n - 1)
        nums = iter([rng.randrange(messages) for _ in range(n)])

        def by_pid() -> None:
            k = next(nums)
            assert store.by_provider_id(conn, f"p{k % PROVIDERS}", f"{k:x}")

        out["show_by_provider_id"] = _timed(by_pid, n)
        # The newest ten minutes of one customer, as `find --since 10m` asks.
        newest = dt.datetime.fromtimestamp(filled["t0"] + messages * filled["step"] - 600, dt.UTC)
        customers = iter([f"c{rng.randrange(CUSTOMERS):03d}" for _ in range(2 * n)])
        found: list[int] = []
        out["find_10m"] = _timed(
            lambda: found.append(len(store.find(conn, next(customers), newest))), n
        )
        out["find_10m_rows_avg"] = round(sum(found) / len(found), 1)
        failed = (3, 4, 5, 8)
        out["find_10m_failed"] = _timed(
            lambda: store.find(conn, next(customers), newest, states=failed), n
        )
        total = conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'message_event'::regclass"
        ).fetchone()
        out["table_mb"] = round(int(total[0]) / 1e6) if total and total[0] else None
        out["bytes_per_row"] = (
            round(int(total[0]) / filled["rows"]) if total and total[0] and filled["rows"] else None
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", help="default: an embedded PostgreSQL in a temp dir")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--budget-s", type=float, default=1800.0, help="stop filling after this")
    ap.add_argument("--lookups", type=int, default=200)
    ap.add_argument("--out", type=Path, help="write the result as JSON here too")
    args = ap.parse_args()
    server = None
    url = args.database_url
    if not url:
        from smsgw.cluster.postgres import EmbeddedPostgres
        from smsgw.cluster.procs import free_port

        server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="smsgw-hist-")), port=free_port())
        server.start()
        url = server.create_database("history_bench")
    try:
        migrate(url)
        filled = fill(url, args.rows, args.budget_s)
        result = {**filled, **lookups(url, filled, args.lookups)}
        for k in ("t0", "step"):
            result.pop(k)
        text = json.dumps(result, indent=2)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
