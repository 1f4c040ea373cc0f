"""The embedded broker is a real Kafka: idempotence, groups, transactions, persistence."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer

from smsgw.cluster.kafka import EmbeddedKafka
from smsgw.cluster.procs import free_port
from smsgw.kafka.security import client_config
from tests.helpers.kafka import drain, new_topic, produce_all
from tests.helpers.scratch import TestDirs

pytestmark = pytest.mark.integration


def test_idempotent_acks_all_producer_writes_each_record_once_in_order(bootstrap: str) -> None:
    topic = new_topic(bootstrap, partitions=1)
    values = [f"m{i}".encode() for i in range(500)]
    reports = produce_all(bootstrap, topic, values, **{"linger.ms": 5, "max.in.flight": 5})
    assert all(r.error() is None for r in reports)
    offsets = sorted(r.offset() or 0 for r in reports)
    assert offsets == list(range(500)), "idempotent producer must not skip or repeat offsets"
    got = drain(bootstrap, topic, expect=500)
    assert [m.value() for m in got] == values


def test_idempotence_refuses_weaker_acks(bootstrap: str) -> None:
    """librdkafka rejects an idempotent producer with acks != all: the guarantee is enforced."""
    with pytest.raises(KafkaException):
        Producer(client_config(bootstrap, {"enable.idempotence": True, "acks": 1}))


def _spawn_member(bootstrap: str, topic: str, group: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.group_consumer", bootstrap, topic, group],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )


class _Reader(threading.Thread):
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.assignments: list[set[int]] = []
        self.got: list[tuple[int, str]] = []

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split()
            if parts[0] == "assigned":
                self.assignments.append(
                    {int(p) for p in parts[1].split(",")} if len(parts) > 1 else set()
                )
            elif parts[0] == "got":
                self.got.append((int(parts[1]), parts[2]))


def _wait(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_group_member_partitions_move_to_survivor_from_committed_offsets(
    bootstrap: str,
) -> None:
    topic = new_topic(bootstrap, partitions=4)
    group = f"g-{uuid.uuid4().hex[:8]}"
    a, b = (
        _Reader(_spawn_member(bootstrap, topic, group)),
        _Reader(_spawn_member(bootstrap, topic, group)),
    )
    a.start()
    b.start()
    try:
        _wait(
            lambda: (
                a.assignments
                and b.assignments
                and a.assignments[-1]
                and b.assignments[-1]
                and len(a.assignments[-1] | b.assignments[-1]) == 4
            ),
            40,
            "both members assigned",
        )
        first = [f"a{i}".encode() for i in range(200)]
        produce_all(bootstrap, topic, first)
        _wait(lambda: len(a.got) + len(b.got) >= 200, 30, "first batch consumed")
        b_parts = set(b.assignments[-1])
        b.proc.kill()  # SIGKILL: no leave-group, no final commit
        b.proc.wait()
        second = [f"b{i}".encode() for i in range(200)]
        produce_all(bootstrap, topic, second)
        _wait(lambda: a.assignments[-1] == {0, 1, 2, 3}, 40, "survivor takes all partitions")
        _wait(lambda: {v for _, v in a.got} >= {v.decode() for v in second}, 30, "second batch")
        # The survivor resumed b's partitions after b's committed offsets: nothing
        # of the first batch that b had processed is read again on them.
        b_done = {v for _, v in b.got}
        reread = [v for p, v in a.got if p in b_parts and v in b_done]
        assert len(reread) <= len(b_parts), f"re-read beyond the in-flight record: {reread}"
        everything = {v for _, v in a.got} | b_done
        assert everything >= {v.decode() for v in first + second}
    finally:
        for r in (a, b):
            r.proc.kill()
            r.proc.wait()


def test_read_committed_sees_committed_transaction_not_aborted(bootstrap: str) -> None:
    topic = new_topic(bootstrap, partitions=1)
    producer = Producer(
        client_config(bootstrap, {"transactional.id": f"tx-{uuid.uuid4().hex[:8]}"})
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, value=f"committed-{i}".encode())
    producer.commit_transaction(30)
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, value=f"aborted-{i}".encode())
    producer.flush(30)  # the aborted records really reach the log
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"after")
    producer.commit_transaction(30)

    committed = [m.value() for m in drain(bootstrap, topic, isolation="read_committed")]
    assert committed == [b"committed-0", b"committed-1", b"committed-2", b"after"]
    uncommitted = [m.value() for m in drain(bootstrap, topic, isolation="read_uncommitted")]
    assert b"aborted-0" in uncommitted, "the aborted records were written, just not visible"


def test_record_survives_broker_restart(kafka: EmbeddedKafka, data_dir: TestDirs) -> None:
    data = data_dir("kafka-restart")
    # The session broker's SCRAM user: the test's clients authenticate with it.
    broker = EmbeddedKafka(
        data, port=free_port(), controller_port=free_port(), credentials=kafka.credentials
    )
    broker.start()
    try:
        topic = new_topic(broker.bootstrap, partitions=1)
        produce_all(broker.bootstrap, topic, [b"before-restart"])
        broker.stop()
        broker.start()
        got = drain(broker.bootstrap, topic, expect=1, timeout=30)
        assert [m.value() for m in got] == [b"before-restart"]
    finally:
        broker.stop()
