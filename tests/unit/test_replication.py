"""Replication policy: the defaults follow the cluster size, explicit values win."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smsgw.kafka import replication
from smsgw.kafka.replication import Replication, TopicReplication, replication_for
from smsgw.kafka.security import use_settings
from smsgw.settings import Settings


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    replication.use_replication(None, None)


@pytest.mark.parametrize(
    ("brokers", "factor", "min_isr"),
    [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2), (0, 1, 1)],
)
def test_defaults_are_min_3_brokers_and_one_less_in_sync(
    brokers: int, factor: int, min_isr: int
) -> None:
    assert replication_for(brokers) == Replication(factor, min_isr)


def test_explicit_values_win_and_min_isr_follows_an_explicit_factor() -> None:
    assert replication_for(5, factor=5) == Replication(5, 4)
    assert replication_for(3, min_isr=3) == Replication(3, 3)
    assert replication_for(3, factor=2, min_isr=2) == Replication(2, 2)


def test_min_isr_above_the_factor_is_refused() -> None:
    with pytest.raises(ValueError, match=r"min\.insync\.replicas 3"):
        replication_for(3, factor=2, min_isr=3)
    with pytest.raises(ValueError, match=r"min\.insync\.replicas 4"):
        replication.use_replication(None, 4)


def test_settings_set_the_process_policy() -> None:
    assert replication.current(3) == Replication(3, 2)
    use_settings(Settings(kafka_replication=2, kafka_min_isr=2))
    assert replication.current(3) == Replication(2, 2)
    assert replication.current(1) == Replication(2, 2)  # named: not capped by the brokers
    use_settings(Settings())
    assert replication.current(1) == Replication(1, 1)


def test_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSGW_KAFKA_REPLICATION", "3")
    monkeypatch.setenv("SMSGW_KAFKA_MIN_ISR", "2")
    monkeypatch.setenv("SMSGW_KAFKA_BROKERS", "3")
    s = Settings()
    assert (s.kafka_replication, s.kafka_min_isr, s.kafka_brokers) == (3, 2, 3)


def test_a_topic_meets_the_policy_only_with_enough_copies_and_min_isr() -> None:
    policy = Replication(3, 2)
    ok = TopicReplication("a", 3, factor=3, min_isr=2, under_replicated=0, offline=0)
    few = TopicReplication("b", 3, factor=1, min_isr=1, under_replicated=0, offline=0)
    lax = TopicReplication("c", 3, factor=3, min_isr=1, under_replicated=1, offline=0)
    assert ok.meets(policy) and not few.meets(policy) and not lax.meets(policy)
    assert few.problems(policy) == ["replication factor 1 < 3", "min.insync.replicas 1 < 2"]
    assert replication.below([ok, few, lax], policy) == [few, lax]
