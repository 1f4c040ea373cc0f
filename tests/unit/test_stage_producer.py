"""A pipeline stage's producer never gives a record up; the listener's does (issue 14).

The listener's producer reports the failure after its produce timeout (the
customer is answered an error); a stage's keeps the record for when Kafka is
back, since giving up would leave the consumed record's offset uncommitted
behind it until a restart. Here the configuration; what librdkafka does with
it is tests/integration/test_stage_producer.py.
"""

from __future__ import annotations

from smsgw.kafka.producer import STAGE_TIMEOUT_S, producer_config


def test_stage_records_never_time_out_in_librdkafka() -> None:
    assert producer_config("b:9092", timeout_s=STAGE_TIMEOUT_S)["message.timeout.ms"] == 0
    assert producer_config("b:9092", timeout_s=5)["message.timeout.ms"] == 5000
    # The broker answers a request waiting for acks=all within the listener's timeout.
    assert producer_config("b:9092", timeout_s=5)["request.timeout.ms"] == 5000
    assert "request.timeout.ms" not in producer_config("b:9092", timeout_s=STAGE_TIMEOUT_S)
