"""The router's watermark query while a partition's leader moves (a rolling restart)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from smsgw.pipeline import router
from smsgw.pipeline.router import watermarks


class Reader:
    """Answers a watermark query with ``errors`` first, then (0, 7)."""

    def __init__(self, *errors: int) -> None:
        self.errors = list(errors)
        self.asked = 0

    def get_watermark_offsets(self, tp: TopicPartition, **_: Any) -> tuple[int, int]:
        self.asked += 1
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))
        return 0, 7


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router, "WATERMARK_RETRY_S", 0.0)


def test_a_moving_leader_is_asked_again() -> None:
    """A rolling restart answered NOT_LEADER_FOR_PARTITION once: the router crashed
    and its whole group rebalanced. Asked again, the next answer is the real one."""
    reader = Reader(KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE)
    tp = TopicPartition("t", 0)
    assert watermarks(reader, tp, time.monotonic() + 5) == (0, 7)  # type: ignore[arg-type]
    assert reader.asked == 3


def test_other_errors_and_the_deadline_still_raise() -> None:
    tp = TopicPartition("t", 0)
    with pytest.raises(KafkaException):
        watermarks(Reader(KafkaError.TOPIC_AUTHORIZATION_FAILED), tp, time.monotonic() + 5)  # type: ignore[arg-type]
    reader = Reader(*[KafkaError.NOT_LEADER_FOR_PARTITION] * 3)
    with pytest.raises(KafkaException):
        watermarks(reader, tp, time.monotonic() - 1)  # type: ignore[arg-type]
    assert reader.asked == 1
