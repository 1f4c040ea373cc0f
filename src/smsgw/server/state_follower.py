"""Keeps a node's query_sm answers current: folds ``message-state`` into its StateStore.

Every node reads every partition (query_sm may reach any node), from the
start of the compacted topic, so a restarted node knows the fate of messages
accepted before it came up. A record contradicting a message's first final
state is followed by that final state written again (``Restorer``): compaction
keeps the newest record per key.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from smsgw import log
from smsgw.kafka.consumer import wait_consume
from smsgw.kafka.dlq import UNDECODABLE, DeadLetters
from smsgw.kafka.producer import AsyncProducer
from smsgw.kafka.security import client_config
from smsgw.state import Restorer, StateRecord, StateStore

# With nothing to apply, a blocking consume on the follower's own thread waits
# for the next record (librdkafka wakes it): no sleep loop (issue 13).
IDLE_WAIT_S = 1.0


class StateFollower:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        store: StateStore,
        dead_letters: DeadLetters,
        producer: AsyncProducer | None = None,
    ) -> None:
        """``producer``: writes first final states again (``Restorer``); None: never."""
        self.topic = topic
        self.store = store
        self.dead_letters = dead_letters
        self.producer = producer
        self.restorer = Restorer()
        self.restored = 0
        self.applied = 0
        self.consumer = Consumer(
            client_config(
                bootstrap,
                {
                    "group.id": f"state-follower-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                    "isolation.level": "read_uncommitted",
                },
            )
        )
        self.log = log.get("smsgw.state")

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        waiter = concurrent.futures.ThreadPoolExecutor(1, "state-wait")
        try:
            md = await asyncio.to_thread(self.consumer.list_topics, self.topic, 10)
            parts = md.topics[self.topic].partitions
            self.consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in parts])
            while not stop.is_set():
                msgs = self.consumer.consume(2000, 0)
                if not msgs:  # no callbacks on an assigned consumer: any thread may wait
                    wait = loop.run_in_executor(
                        waiter, wait_consume, self.consumer, 2000, IDLE_WAIT_S
                    )
                    msgs = await asyncio.shield(wait)
                for m in msgs:
                    value = m.value()
                    if m.error() is not None or not value:
                        continue
                    try:
                        record = StateRecord.decode(value)
                    except UNDECODABLE as exc:
                        self.dead_letters.put(m, exc)
                        continue
                    self.restorer.read(record, self.store.apply(record), loop.time())
                    self.applied += 1
                self._restore(loop.time())
        finally:
            await asyncio.to_thread(waiter.shutdown, True)  # no consume left when it closes
            await asyncio.to_thread(self.consumer.close)

    def _restore(self, now: float) -> None:
        """Write again the first final states contradicted a while ago (``Restorer``)."""
        if self.producer is None:
            self.restorer.pending.clear()
            return
        for kept in self.restorer.due(now):
            try:
                fut = self.producer.produce(self.topic, kept.encode(), kept.id.encode())
            except Exception as exc:  # backlog full: the next contradiction tries again
                self.log.warning("could not restore a first final state", error=repr(exc))
                continue
            self.restored += 1
            self.log.info("first final state written again", id=kept.id, state=kept.state.name)
            fut.add_done_callback(self._restore_reported)

    def _restore_reported(self, fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            self.log.warning("could not restore a first final state", error=str(fut.exception()))
