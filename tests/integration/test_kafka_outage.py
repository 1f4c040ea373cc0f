"""Stop the broker under a submitting client: status 0 only for what is really on Kafka."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from smsgw.cluster.kafka import EmbeddedKafka
from smsgw.cluster.procs import free_port
from smsgw.cluster.topics import ensure_topics
from smsgw.smpp.status import CommandStatus as S
from smsgw.topics import Topics
from tests.helpers import esme
from tests.helpers.gateway import GatewayNode
from tests.helpers.scratch import TestDirs
from tests.integration.conftest import gateway_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_no_success_without_kafka_and_listener_recovers(
    db_url: str, kafka: EmbeddedKafka, data_dir: TestDirs
) -> None:
    # A broker of its own to stop, with the session broker's SCRAM user: the
    # gateway's settings in the tests carry those credentials.
    broker = EmbeddedKafka(
        data_dir("outage"),
        port=free_port(),
        controller_port=free_port(),
        credentials=kafka.credentials,
    )
    data_dir.stop_with(broker.stop)
    broker.start()
    topics = Topics("outage.")
    ensure_topics(broker.bootstrap, topics.specs(partitions=3))
    node = GatewayNode(gateway_settings(broker.bootstrap, db_url, produce_timeout_s=2.0), topics)
    node.start()
    try:
        node.add_customer("steady", "pw", tps=10_000)
        client = esme.bind(node.host, node.port, "steady", "pw")
        client.timeout = 15
        client._socket.settimeout(15)
        results: list[tuple[float, int, str]] = []
        stop = threading.Event()

        def submit_loop() -> None:
            i = 0
            while not stop.is_set():
                resp = esme.submit(client, short_message=f"n{i}".encode())
                results.append((time.monotonic(), int(resp.status), esme.message_id(resp)))
                i += 1

        def until(cond: Callable[[], bool], what: str, timeout: float = 60) -> None:
            deadline = time.monotonic() + timeout
            while not cond():
                assert time.monotonic() < deadline, f"{what}: {results[-5:]}"
                time.sleep(0.1)

        def first_ok_after(t0: float) -> float | None:
            return next((t for t, s, _ in list(results) if t > t0 and s == 0), None)

        worker = threading.Thread(target=submit_loop, daemon=True)
        worker.start()
        until(lambda: sum(1 for _, s, _ in list(results) if s == 0) >= 20, "traffic flowing")
        broker.stop()  # mid-traffic
        down_at = time.monotonic()
        time.sleep(6)  # the outage: a duration, not a wait for something
        broker.start()
        up_at = time.monotonic()
        # Recovered without a restart: accepted again, and a run of submits after that.
        until(lambda: first_ok_after(up_at) is not None, "no submit accepted after the restart")
        back_at = first_ok_after(up_at) or up_at
        until(lambda: sum(1 for t, _, _ in list(results) if t > back_at) >= 20, "traffic again")
        stop.set()
        worker.join(30)
        client.disconnect()

        ok_ids = {mid for _, status, mid in results if status == 0}
        failed = [s for _, s, _ in results if s != 0]
        during = [s for t, s, _ in results if down_at + 0.5 < t < up_at]
        after = [s for t, s, _ in results if t > back_at]
        assert failed, "submits during the outage must fail"
        assert set(failed) <= {S.ESME_RSYSERR, S.ESME_RMSGQFUL}
        assert during and all(s != 0 for s in during), "no success while the broker is down"
        assert after and all(s == 0 for s in after), "the listener recovers without restart"
        print(f"outage: accepted again {back_at - up_at:.1f} s after the broker restarted")
        # Read all of it: records whose ack was lost in the outage are there too, so
        # stopping at len(ok_ids) records could stop short of an acknowledged one.
        on_kafka = {m.id for m in node.read_submits(expect=None, timeout=30)}
        missing = ok_ids - on_kafka
        assert not missing, f"{len(missing)} acknowledged submits are not on Kafka"
        print(
            f"outage: {len(results)} submits, {len(ok_ids)} ok (all on Kafka), "
            f"{len(failed)} failed, {len(on_kafka - ok_ids)} on Kafka without an ok"
        )
    finally:
        node.stop()
        broker.stop()
