"""Batching per role (smsgw.kafka.tuning) and the embedded broker's load settings.

What must not move while requests per message go down: every producer stays
idempotent with acks=all (a submit_sm_resp 0 only after that report, DESIGN
invariant 1), and the operator's own broker settings still win.
"""

from __future__ import annotations

from pathlib import Path

from smsgw.cluster.kafka import EmbeddedKafka
from smsgw.cluster.kafka_tuning import BROKER_LOAD_SETTINGS
from smsgw.kafka.consumer import consumer_config
from smsgw.kafka.producer import producer_config
from smsgw.kafka.tuning import ACCEPT_LINGER_MS, HISTORY_FETCH, STAGE_LINGER_MS


def test_stage_producers_linger_longer_than_acceptance_and_stay_acks_all() -> None:
    stage = producer_config("127.0.0.1:1", timeout_s=5)
    accept = producer_config("127.0.0.1:1", timeout_s=5, extra={"linger.ms": ACCEPT_LINGER_MS})
    assert stage["linger.ms"] == STAGE_LINGER_MS > accept["linger.ms"] == ACCEPT_LINGER_MS
    for conf in (stage, accept):
        assert conf["acks"] == "all" and conf["enable.idempotence"] is True


def test_only_the_history_holds_its_fetches() -> None:
    path = consumer_config("127.0.0.1:1", "g")
    assert path["fetch.wait.max.ms"] == 1000 and "fetch.min.bytes" not in path
    history = consumer_config("127.0.0.1:1", "h", **HISTORY_FETCH)
    assert history["fetch.min.bytes"] >= 64 * 1024


def test_broker_gets_the_load_settings_and_extra_config_still_wins(tmp_path: Path) -> None:
    props = EmbeddedKafka(tmp_path, port=1, controller_port=2).server_properties()
    for key, value in BROKER_LOAD_SETTINGS.items():
        assert props[key] == value
    mine = EmbeddedKafka(
        tmp_path, port=1, controller_port=2, extra_config={"num.io.threads": "8"}
    ).server_properties()
    assert mine["num.io.threads"] == "8"
