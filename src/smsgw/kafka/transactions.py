"""A transactional producer whose every call ends by a deadline of ours.

librdkafka's transactional calls take a timeout, but not all of them keep it:
``send_offsets_to_transaction`` waits for the group coordinator past its
timeout (librdkafka #5456), and forever once the dead coordinator was dropped
from the cluster metadata (#5511, since 2.10). A router blocked there routes
nothing more and is never restarted (issue 14: 173 of 6 712 accepted routed in
5 min after its coordinator broker was SIGKILLed). So each call runs on this
producer's own daemon thread and is awaited with a deadline; past it the
producer is given up (``TransactionStuck``): the worker starts again with a new
one, whose ``init_transactions`` under the same ``transactional.id`` fences this
one and has the coordinator abort its open transaction.

Errors are handled as librdkafka documents them (rdkafka.h, "Transactional
producer API"): retriable, the same call again while time is left; abortable,
``abort_transaction`` and then ``TransactionAborted`` (the caller re-reads from
its committed offsets); anything else is fatal to the producer.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Literal, TypeVar

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

T = TypeVar("T")

# One record of a transaction: topic, key, value (None: a tombstone), partition (None: by key).
Record = tuple[str, bytes, bytes | None, int | None]

# Our own bound on a whole transaction (produce, offsets, commit): the broker
# aborts one left open for transaction.timeout.ms anyway, so waiting longer
# than that only delays the restart that recovers it.
DEADLINE_S = 60.0
_GRACE_S = 5.0  # librdkafka's own timeout is given the deadline; ours fires this much later


class TransactionFailed(Exception):
    """The transaction was not committed; nothing of it is visible to read_committed."""


class TransactionAborted(TransactionFailed):
    """Aborted after an abortable error: re-read from the committed offsets."""


class TransactionStuck(TransactionFailed):
    """A call did not end by the deadline: this producer is given up for a new one."""


def action(err: KafkaError) -> Literal["retry", "abort", "fatal"]:
    """What a transactional call's error asks for (rdkafka.h): fatal wins over abortable,
    abortable over retriable; an error that is none of them is fatal."""
    if err.fatal():
        return "fatal"
    if err.txn_requires_abort():
        return "abort"
    if err.retriable():
        return "retry"
    return "fatal"


class _Calls:
    """One daemon thread running calls in order: a call stuck in librdkafka blocks this
    thread (never the event loop, nor a shared executor), and not the process's exit."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        fut: Future[T] = Future()
        self._queue.put((fn, fut))
        return fut

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

    def close(self) -> None:
        self._queue.put(None)


async def bounded(fn: Callable[[], T], timeout_s: float, name: str) -> T:
    """``fn()`` on a daemon thread of its own, awaited at most ``timeout_s`` (then
    ``TimeoutError``; the thread is left to finish or not). For librdkafka calls
    without a timeout, such as a consumer's close with its coordinator gone."""
    calls = _Calls(name)
    try:
        return await asyncio.wait_for(asyncio.wrap_future(calls.submit(fn)), timeout_s)
    finally:
        calls.close()


class TransactionalProducer:
    """``confluent_kafka.Producer`` with ``transactional.id``, one transaction per ``commit``."""

    def __init__(
        self,
        config: dict[str, Any],
        *,
        deadline_s: float = DEADLINE_S,
        grace_s: float = _GRACE_S,
        factory: Callable[[dict[str, Any]], Any] = Producer,
    ) -> None:
        self.deadline_s = deadline_s
        self.grace_s = grace_s
        self.producer = factory(config)
        self._calls = _Calls(f"txn:{config.get('transactional.id', '')}")
        self.broken: TransactionFailed | None = None

    def init(self) -> None:
        """``init_transactions`` (blocking: call it off the event loop), within the deadline."""
        fut = self._calls.submit(
            lambda: self._retrying(self.producer.init_transactions, self._deadline())
        )
        try:
            fut.result(self.deadline_s + self.grace_s)
        except TimeoutError:
            self.close()
            raise self._give_up("init_transactions") from None
        except BaseException:
            self.close()
            raise

    async def commit(
        self,
        records: list[Record],
        offsets: dict[tuple[str, int], int],
        group_metadata: object,
    ) -> None:
        """Produce ``records`` and commit ``offsets`` for the group, all or nothing.

        Raises ``TransactionAborted`` (nothing written, the producer still usable),
        ``TransactionStuck`` or ``KafkaException`` (a fatal error: the producer is
        done). Either way the caller must not treat its input as processed."""
        if self.broken is not None:
            raise self.broken
        deadline = self._deadline()
        fut = self._calls.submit(lambda: self._transact(records, offsets, group_metadata, deadline))
        try:
            await asyncio.wait_for(asyncio.wrap_future(fut), self.deadline_s + self.grace_s)
        except TimeoutError:
            raise self._give_up("transaction") from None

    def close(self) -> None:
        """Stop the call thread once its calls are done (a stuck one keeps it, as a daemon)."""
        self._calls.close()

    # ------------------------------------------------------------ on the call thread
    def _deadline(self) -> float:
        return time.monotonic() + self.deadline_s

    def _give_up(self, what: str) -> TransactionStuck:
        self.broken = TransactionStuck(f"{what} did not end within {self.deadline_s:.0f} s")
        return self.broken

    def _retrying(self, call: Callable[[float], object], deadline: float) -> None:
        """``call(timeout)`` again while its error is retriable and time is left."""
        while True:
            try:
                call(max(deadline - time.monotonic(), 0.1))
                return
            except KafkaException as exc:
                err = exc.args[0]
                if action(err) != "retry":
                    raise
                if time.monotonic() >= deadline:
                    raise self._give_up(f"{err.name()} until the deadline") from exc

    def _transact(
        self,
        records: list[Record],
        offsets: dict[tuple[str, int], int],
        group_metadata: object,
        deadline: float,
    ) -> None:
        p = self.producer
        p.begin_transaction()
        try:
            for topic, key, value, partition in records:
                while True:
                    try:
                        if partition is None:
                            p.produce(topic, value=value, key=key)
                        else:
                            p.produce(topic, value=value, key=key, partition=partition)
                        break
                    except BufferError:
                        if time.monotonic() >= deadline:
                            raise self._give_up("produce (queue full)") from None
                        p.poll(0.05)
            if offsets:
                positions = [TopicPartition(t, part, o) for (t, part), o in offsets.items()]
                self._retrying(
                    lambda t: p.send_offsets_to_transaction(positions, group_metadata, t), deadline
                )
            self._retrying(p.commit_transaction, deadline)
        except KafkaException as exc:
            if action(exc.args[0]) != "abort":
                raise
            self._retrying(p.abort_transaction, max(deadline, time.monotonic() + 10.0))
            raise TransactionAborted(str(exc.args[0])) from exc
