"""Keeps a node's query_sm answers current: folds ``message-state`` into its StateStore.

Every node reads every partition (query_sm may reach any node), from the
start of the compacted topic, so a restarted node knows the fate of messages
accepted before it came up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from smsgw import log
from smsgw.kafka.consumer import wait_consume
from smsgw.kafka.dlq import UNDECODABLE, DeadLetters
from smsgw.kafka.security import client_config
from smsgw.state import StateRecord, StateStore

# With nothing to apply, a blocking consume on the follower's own thread waits
# for the next record (librdkafka wakes it): no sleep loop (issue 13).
IDLE_WAIT_S = 1.0


class StateFollower:
    def __init__(
        self, bootstrap: str, topic: str, store: StateStore, dead_letters: DeadLetters
    ) -> None:
        self.topic = topic
        self.store = store
        self.dead_letters = dead_letters
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
                        self.store.apply(StateRecord.decode(value))
                        self.applied += 1
                    except UNDECODABLE as exc:
                        self.dead_letters.put(m, exc)
        finally:
            await asyncio.to_thread(waiter.shutdown, True)  # no consume left when it closes
            await asyncio.to_thread(self.consumer.close)
