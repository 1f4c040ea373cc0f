"""An idempotent ``acks=all`` producer whose deliveries are awaitable in asyncio.

``produce()`` returns a future that resolves only from Kafka's delivery
report: that report is the proof a message is durable, and the only thing
allowed to release a ``submit_sm_resp`` with status 0. librdkafka serves
delivery reports from ``poll()``; one thread polls and hands finished reports
to the event loop in batches (one ``call_soon_threadsafe`` per batch, not per
message).

Two kinds: the listener's (``timeout_s``: a customer waits for the answer,
so a record not on Kafka in time is refused) and a pipeline stage's
(``stage_producer``: the record was taken on from Kafka, so it is never
given up).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from smsgw.kafka.security import client_config
from smsgw.kafka.tuning import STAGE_LINGER_MS

_Report = tuple["asyncio.Future[Message]", KafkaError | None, Message]
# An idle producer's thread (nothing queued, nothing to report) sleeps until the
# next produce; this bounds the sleep, for anything librdkafka queued on its own.
IDLE_POLL_S = 5.0


class ProduceError(Exception):
    """Kafka did not confirm the record; ``retriable`` says whether trying again may help."""

    def __init__(self, error: KafkaError | str, *, retriable: bool = True) -> None:
        super().__init__(str(error))
        self.retriable = retriable


class BacklogFull(ProduceError):
    """More records are waiting for Kafka than the configured bound."""


def producer_config(
    bootstrap: str, *, timeout_s: float, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    bounded: dict[str, Any] = {}
    if timeout_s > 0:
        # librdkafka times a record out only once no request carries it; a leader
        # whose followers died holds the request for this long waiting for acks=all
        # (default 30 s: reports came 17 s late with two brokers down, 8 s with
        # this). The listener answers by its own deadline all the same
        # (smsgw.server.submit_outcome); this keeps the record's fate from
        # staying open much longer than the answer.
        bounded["request.timeout.ms"] = int(timeout_s * 1000)
    return client_config(bootstrap) | {
        "enable.idempotence": True,
        "acks": "all",
        "max.in.flight.requests.per.connection": 5,
        # Stage outputs by default; the listener's acceptance passes its own
        # (smsgw.kafka.tuning: requests per message vs delay per hop).
        "linger.ms": STAGE_LINGER_MS,
        "batch.num.messages": 2000,
        "compression.type": "lz4",
        # No request carries a record for the first time, nor again, after this
        # (0: never, a stage's STAGE_TIMEOUT_S): the listener's error answer is
        # due at the same time, counted from the same produce call.
        "message.timeout.ms": int(timeout_s * 1000),
        "socket.keepalive.enable": True,
        **bounded,
        **(extra or {}),
    }


# A pipeline stage (provider bind, correlator, deliverer) writes the outcome of a
# record it has consumed; the record's offset is committed only after that write.
# Given up after a timeout, the record would stay uncommitted behind it until a
# restart (receipts stalled, sends repeated: issue 14, one broker SIGKILLed).
# So a stage's producer never times a record out: librdkafka retries it, in
# order and without duplicates (idempotence), through leader elections and a
# lost min ISR until Kafka takes it. 0 is librdkafka's "infinite". Only the
# timeouts differ from the listener's producer; batching stays shared.
STAGE_TIMEOUT_S = 0.0


class AsyncProducer:
    def __init__(
        self,
        bootstrap: str,
        *,
        timeout_s: float = 5.0,
        max_backlog: int = 20_000,
        extra: dict[str, Any] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._producer = Producer(producer_config(bootstrap, timeout_s=timeout_s, extra=extra))
        self._loop = loop or asyncio.get_running_loop()
        self.max_backlog = max_backlog
        self.in_flight = 0
        self._done: list[_Report] = []
        self._done_lock = threading.Lock()
        self._stop = threading.Event()
        self._work = threading.Event()  # set after each produce (and by close)
        self._thread = threading.Thread(target=self._poll_loop, name="kafka-producer", daemon=True)
        self._thread.start()

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None = None
    ) -> asyncio.Future[Message]:
        """Queue one record (``value=None``: a tombstone); the future resolves with its report."""
        if self.in_flight >= self.max_backlog:
            raise BacklogFull(f"{self.in_flight} records waiting for Kafka", retriable=True)
        fut: asyncio.Future[Message] = self._loop.create_future()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            with self._done_lock:
                self._done.append((fut, err, msg))

        try:
            self._producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
        except BufferError as exc:
            raise BacklogFull(f"librdkafka queue full: {exc}") from exc
        except KafkaException as exc:
            raise ProduceError(exc.args[0], retriable=False) from exc
        self.in_flight += 1
        self._work.set()
        return fut

    def _poll_loop(self) -> None:
        """Serve reports while librdkafka holds anything (records, reports, errors);
        with nothing, sleep until the next produce. Polling on a 50-ms timer woke
        every idle producer 20 times a second (issue 13)."""
        while not self._stop.is_set():
            if len(self._producer) == 0:
                # Cleared before the queue is looked at again below: a produce after
                # this point has its record queued before it sets the event.
                self._work.wait(IDLE_POLL_S)
                self._work.clear()
            self._producer.poll(0.05)  # returns at the first report
            self._hand_over()
        self._producer.flush(10)
        if len(self._producer):
            # Records still waiting (a stage's never time out): purged, their futures
            # fail and their offsets stay uncommitted for the next owner; without
            # this, close() would wait for Kafka forever.
            self._producer.purge()
            self._producer.flush(1)
        self._hand_over()

    def _hand_over(self) -> None:
        with self._done_lock:
            if not self._done:
                return
            batch, self._done = self._done, []
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            self._loop.call_soon_threadsafe(self._resolve, batch)

    def _resolve(self, batch: list[_Report]) -> None:
        self.in_flight -= len(batch)
        for fut, err, msg in batch:
            if fut.done():
                continue
            if err is None:
                fut.set_result(msg)
            else:
                fut.set_exception(ProduceError(err, retriable=err.retriable()))

    def give_up(self, fut: asyncio.Future[Message]) -> None:
        """Stop waiting for this record's report (the caller answered without it).

        librdkafka cannot take a record back: it may still reach Kafka. Its
        report, when it comes, is dropped (the future is cancelled).
        """
        fut.cancel()

    async def close(self) -> None:
        self._stop.set()
        self._work.set()
        await asyncio.to_thread(self._thread.join, 15)
        closer = getattr(self._producer, "close", None)  # confluent-kafka >= 2.13
        if closer is not None:
            closer()

    @classmethod
    def stage_producer(cls, bootstrap: str, **kwargs: Any) -> AsyncProducer:
        """A pipeline stage's producer: retries every record until Kafka takes it."""
        return cls(bootstrap, timeout_s=STAGE_TIMEOUT_S, **kwargs)

    def flush(self, timeout: float) -> int:
        remaining: int = self._producer.flush(timeout)
        return remaining
