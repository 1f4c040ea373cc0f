"""The router's transactional producer: librdkafka's error kinds, and its own deadline.

A scripted stand-in for ``confluent_kafka.Producer`` (only the transactional
calls) lets each error kind and a call that never returns be shown without a
broker; the broker side is the broker-loss suite (coordinator killed).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from smsgw.kafka.transactions import (
    TransactionAborted,
    TransactionalProducer,
    TransactionStuck,
    action,
    bounded,
)


def _err(**kind: bool) -> KafkaException:
    return KafkaException(KafkaError(KafkaError._TIMED_OUT, "scripted", **kind))


RETRIABLE = {"retriable": True}
ABORTABLE = {"txn_requires_abort": True}
FATAL = {"fatal": True}


class Scripted:
    """Each transactional call pops its next outcome: an exception to raise, a
    callable to run (e.g. blocking), or nothing (success)."""

    def __init__(self, **script: list[Any]) -> None:
        self.script = script
        self.calls: list[str] = []
        self.produced: list[tuple[str, bytes | None]] = []

    def _do(self, name: str) -> None:
        self.calls.append(name)
        todo = self.script.get(name, [])
        if todo:
            step = todo.pop(0)
            if isinstance(step, BaseException):
                raise step
            if callable(step):
                step()

    def init_transactions(self, timeout: float) -> None:
        self._do("init")

    def begin_transaction(self) -> None:
        self._do("begin")

    def produce(self, topic: str, value: bytes | None = None, **_: Any) -> None:
        self.produced.append((topic, value))

    def poll(self, timeout: float) -> int:
        return 0

    def send_offsets_to_transaction(self, offsets: Any, metadata: Any, timeout: float) -> None:
        self._do("offsets")

    def commit_transaction(self, timeout: float) -> None:
        self._do("commit")

    def abort_transaction(self, timeout: float) -> None:
        self._do("abort")


def _producer(
    fake: Scripted, deadline_s: float = 5.0, grace_s: float = 0.5
) -> TransactionalProducer:
    factory: Callable[[dict[str, Any]], Any] = lambda _config: fake  # noqa: E731
    p = TransactionalProducer(
        {"transactional.id": "t"}, deadline_s=deadline_s, grace_s=grace_s, factory=factory
    )
    p.init()
    return p


def _commit(p: TransactionalProducer) -> None:
    asyncio.run(p.commit([("out", b"k", b"v", None)], {("submit", 0): 7}, object()))


def test_error_kinds_as_librdkafka_documents_them() -> None:
    assert action(_err(**RETRIABLE).args[0]) == "retry"
    assert action(_err(**ABORTABLE).args[0]) == "abort"
    assert action(_err(**FATAL).args[0]) == "fatal"
    assert action(_err(fatal=True, txn_requires_abort=True).args[0]) == "fatal"
    assert action(_err().args[0]) == "fatal"  # none of them: not known to be safe


def test_a_retriable_commit_is_committed_again_not_aborted() -> None:
    """A commit that timed out may still be going on: abort_transaction then fails
    (the old router aborted, failed again and restarted on every such timeout)."""
    fake = Scripted(commit=[_err(**RETRIABLE), _err(**RETRIABLE)], offsets=[_err(**RETRIABLE)])
    _commit(_producer(fake))
    assert fake.calls == ["init", "begin", "offsets", "offsets", "commit", "commit", "commit"]
    assert fake.produced == [("out", b"v")]


def test_an_abortable_error_aborts_and_says_so() -> None:
    fake = Scripted(offsets=[_err(**ABORTABLE)], abort=[_err(**RETRIABLE)])
    p = _producer(fake)
    with pytest.raises(TransactionAborted):
        _commit(p)
    assert fake.calls == ["init", "begin", "offsets", "abort", "abort"]  # never committed
    assert p.broken is None  # the producer itself is still usable


def test_a_fatal_error_is_not_aborted() -> None:
    fake = Scripted(commit=[_err(**FATAL)])
    with pytest.raises(KafkaException):
        _commit(_producer(fake))
    assert "abort" not in fake.calls


def test_a_call_that_never_returns_ends_by_the_deadline() -> None:
    """librdkafka #5456/#5511: send_offsets_to_transaction can wait for a dead group
    coordinator past its timeout, forever once the broker left the metadata. The
    router awaited it: 173 of 6 712 accepted routed in 5 min (issue 14)."""
    release = threading.Event()
    fake = Scripted(offsets=[lambda: release.wait(60)])
    p = _producer(fake, deadline_s=0.2, grace_s=0.2)
    t0 = time.monotonic()
    with pytest.raises(TransactionStuck):
        _commit(p)
    assert time.monotonic() - t0 < 5
    with pytest.raises(TransactionStuck):  # given up: not used again
        _commit(p)
    assert fake.calls.count("begin") == 1
    release.set()


def test_retriable_errors_until_the_deadline_give_the_producer_up() -> None:
    def timed_out() -> None:  # as librdkafka does: after the timeout it was given
        time.sleep(0.05)
        raise _err(**RETRIABLE)

    fake = Scripted(commit=[timed_out] * 1000)
    p = _producer(fake, deadline_s=0.3)
    with pytest.raises(TransactionStuck):
        _commit(p)
    assert p.broken is not None


def test_an_init_that_never_returns_ends_by_the_deadline() -> None:
    release = threading.Event()
    fake = Scripted(init=[lambda: release.wait(60)])
    factory: Callable[[dict[str, Any]], Any] = lambda _config: fake  # noqa: E731
    p = TransactionalProducer({}, deadline_s=0.3, grace_s=0.2, factory=factory)
    with pytest.raises(TransactionStuck):
        p.init()
    release.set()


def test_bounded_gives_up_waiting_for_a_stuck_call() -> None:
    release = threading.Event()

    async def run() -> None:
        with pytest.raises(TimeoutError):
            await bounded(lambda: release.wait(60), 0.2, "stuck")
        assert await bounded(lambda: 7, 1.0, "quick") == 7

    asyncio.run(run())
    release.set()
