"""A consumer-group member as its own process, so a test can SIGKILL it.

Prints ``assigned p,p,…`` on each assignment and ``got <partition> <value>``
for each record, committing each record's offset synchronously after it.
"""

from __future__ import annotations

import sys

from confluent_kafka import Consumer, TopicPartition

from smsgw.kafka.security import client_config, use_settings
from smsgw.settings import Settings


def main() -> None:
    bootstrap, topic, group = sys.argv[1:4]
    use_settings(Settings())  # the session broker's credentials, from SMSGW_KAFKA_*
    consumer = Consumer(
        client_config(
            bootstrap,
            {
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
            },
        )
    )

    def on_assign(c: Consumer, parts: list[TopicPartition]) -> None:
        print("assigned", ",".join(str(p.partition) for p in parts), flush=True)

    consumer.subscribe([topic], on_assign=on_assign)
    while True:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        print("got", msg.partition(), (msg.value() or b"").decode(), flush=True)
        consumer.commit(message=msg, asynchronous=False)


if __name__ == "__main__":
    main()
