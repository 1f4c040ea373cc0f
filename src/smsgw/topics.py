"""The Kafka topics of the data plane: every arrow between actors is one of these."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Topics:
    """Topic names under one prefix, so tests (and tenants) can run side by side."""

    prefix: str = "smsgw."

    @property
    def submit(self) -> str:
        """Accepted customer messages, keyed by gateway id (multipart: by concat key)."""
        return f"{self.prefix}submit"

    @property
    def message_state(self) -> str:
        """Compacted: the latest known state of each message, for query_sm."""
        return f"{self.prefix}message-state"

    def specs(self, partitions: int) -> list[TopicSpec]:
        week = str(7 * 24 * 3600 * 1000)
        return [
            TopicSpec(self.submit, partitions, {"retention.ms": week, "min.insync.replicas": "1"}),
            TopicSpec(
                self.message_state,
                partitions,
                {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
            ),
        ]
