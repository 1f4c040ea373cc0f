"""The embedded PostgreSQL is real, and migrations are versioned and repeatable."""

from __future__ import annotations

import threading

import psycopg
import pytest

from smsgw.cluster.postgres import EmbeddedPostgres
from smsgw.db.migrate import available, current_version, migrate

pytestmark = pytest.mark.integration


def test_migrations_applied_and_recorded(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        assert current_version(conn) == available()[-1].version
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == [m.version for m in available()]
    assert migrate(db_url) == [], "a second run applies nothing"


def test_concurrent_migrations_apply_once(postgres: EmbeddedPostgres) -> None:
    url = postgres.create_database("t_concurrent_migrate")
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(len(migrate(url)))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 0, 0, len(available())]


def test_row_written_and_read(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO customers (system_id, password_hash, allow_ips) VALUES (%s, %s, %s)",
            ("acme", "$argon2id$x", ["10.0.0.0/8"]),
        )
        conn.commit()
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT system_id, enabled, max_binds, allow_ips::text[] FROM customers"
        ).fetchone()
    assert row == ("acme", True, 4, ["10.0.0.0/8"])


def test_config_change_is_notified(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN smsgw_config")
        with psycopg.connect(db_url, autocommit=True) as writer:
            writer.execute("INSERT INTO customers (system_id, password_hash) VALUES ('n1', 'h')")
        notes = list(listener.notifies(timeout=5, stop_after=1))
    assert [(n.channel, n.payload) for n in notes] == [("smsgw_config", "customers")]
