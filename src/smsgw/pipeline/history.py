"""The history stage: every message's events, from Kafka into PostgreSQL, in batches.

It follows the topics that already tell each message's story (``submit``,
``out.*``, ``sent``, ``inbound``, ``message-state``, ``deliver``,
``delivered``) in its own consumer group, so acceptance and delivery never
wait for it: PostgreSQL sees one transaction per batch (up to
``BATCH_ROWS`` rows or ``BATCH_INTERVAL_S``), never a write per message.
Offsets are committed after the batch is in PostgreSQL; a crash replays
the batch, which adds nothing (rows are unique on their source offset).
If PostgreSQL is away the stage waits, and the topics hold the backlog.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import Message

from smsgw import log
from smsgw.db import history as store
from smsgw.history import Event, events_from
from smsgw.kafka.consumer import LONG_WAIT_S, AsyncConsumer, consumer_config
from smsgw.kafka.tuning import HISTORY_FETCH
from smsgw.topics import Topics

BATCH_ROWS = 5000
BATCH_INTERVAL_S = 0.5
MAINTENANCE_S = 3600.0


@dataclass
class HistoryStats:
    records: int = 0
    rows: int = 0
    batches: int = 0
    skipped: int = 0  # records it could not read (the owning stage dead-letters them)
    last_batch_ms: float = 0.0
    dropped_partitions: int = 0


def history_topics(topics: Topics) -> list[str]:
    """What it subscribes to; ``out.<provider>`` by pattern (providers come and go)."""
    return [
        topics.submit,
        topics.sent,
        topics.inbound,
        topics.message_state,
        topics.deliver,
        topics.delivered,
        "^" + re.escape(topics.outbound("")) + ".+",
    ]


class HistoryWriter:
    def __init__(
        self, bootstrap: str, topics: Topics, database_url: str, *, retention_days: int = 7
    ) -> None:
        self.topics = topics
        self.database_url = database_url
        self.retention_days = retention_days
        self.stats = HistoryStats()
        # New out.<provider> topics are found by the pattern within seconds.
        config = consumer_config(
            bootstrap,
            f"{topics.prefix}history",
            **{"topic.metadata.refresh.interval.ms": 5000, **HISTORY_FETCH},
        )
        self.consumer = AsyncConsumer(config, history_topics(topics))
        self.log = log.get("smsgw.history")
        self._known: set[dt.date] = set()
        self._warned = False

    def _events(self, m: Message) -> list[Event]:
        topic = m.topic() or ""
        src = f"{topic}:{m.partition()}:{m.offset()}"
        ts = m.timestamp()[1] / 1000.0 if m.timestamp()[1] > 0 else time.time()
        try:
            return events_from(self.topics, topic, m.key(), m.value(), src, ts)
        except Exception as exc:  # the owning stage dead-letters it; history skips it
            self.stats.skipped += 1
            if not self._warned:
                self._warned = True
                self.log.warning("unreadable record skipped", source=src, error=repr(exc))
            return []

    def _maintain(self, conn: psycopg.Connection[Any]) -> None:
        today = dt.datetime.now(dt.UTC).date()
        store.ensure_days(conn, [today, today + dt.timedelta(days=1)])
        self._known |= {today, today + dt.timedelta(days=1)}
        dropped = store.drop_before(conn, self.retention_days, today)
        if dropped:
            self._known = {d for d in self._known if store.partition_name(d) not in dropped}
            self.stats.dropped_partitions += len(dropped)
            self.log.info("history partitions dropped (retention)", partitions=dropped)

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.database_url, autocommit=True)

    async def run(self, stop: asyncio.Event) -> None:
        conn = await asyncio.to_thread(self._connect)
        try:
            await asyncio.to_thread(self._maintain, conn)
            last_maintenance = time.monotonic()
            pending: list[Message] = []
            events: list[Event] = []
            first_at = 0.0
            while not stop.is_set():
                # Pending rows are due BATCH_INTERVAL_S after the first; with none,
                # nothing is due but a record (or the stop), which ends the wait.
                wait = LONG_WAIT_S
                if pending:
                    wait = max(0.0, first_at + BATCH_INTERVAL_S - time.monotonic())
                msgs = await self.consumer.batch(2000, wait, stop)
                if msgs and not pending:
                    first_at = time.monotonic()
                for m in msgs:
                    events += self._events(m)
                pending += msgs
                due = pending and (
                    len(events) >= BATCH_ROWS or time.monotonic() - first_at >= BATCH_INTERVAL_S
                )
                if due:
                    t0 = time.perf_counter()
                    written = await asyncio.to_thread(store.write, conn, events, self._known)
                    self.stats.last_batch_ms = round((time.perf_counter() - t0) * 1000, 1)
                    self.stats.records += len(pending)
                    self.stats.rows += written
                    self.stats.batches += 1
                    for m in pending:
                        self.consumer.done(m)
                    self.consumer.commit()
                    pending, events = [], []
                if time.monotonic() - last_maintenance > MAINTENANCE_S:
                    last_maintenance = time.monotonic()
                    await asyncio.to_thread(self._maintain, conn)
        finally:
            await asyncio.to_thread(self.consumer.close)
            await asyncio.to_thread(conn.close)
