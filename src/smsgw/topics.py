"""The Kafka topics of the data plane: every arrow between actors is one of these."""

from __future__ import annotations

from dataclasses import dataclass, field

WEEK_MS = str(7 * 24 * 3600 * 1000)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)

    @classmethod
    def plain(cls, name: str, partitions: int) -> TopicSpec:
        """A plain (not compacted) topic keeping a week, whatever the broker's default
        retention: the fixed topics and every ``out.<provider>`` made on demand."""
        return cls(name, partitions, {"retention.ms": WEEK_MS})


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

    @property
    def sent(self) -> str:
        """Compacted: provider message id -> gateway id, keyed provider:<id>."""
        return f"{self.prefix}sent"

    @property
    def inbound(self) -> str:
        """Receipts from providers, keyed like ``sent`` (co-partitioned with it)."""
        return f"{self.prefix}inbound"

    @property
    def deliver(self) -> str:
        """Receipts and MO owed to customers, keyed by customer."""
        return f"{self.prefix}deliver"

    @property
    def delivered(self) -> str:
        """Compacted: ids of deliveries a customer acknowledged (no redelivery after a crash)."""
        return f"{self.prefix}delivered"

    @property
    def multipart(self) -> str:
        """Compacted changelog of held multipart parts, co-partitioned with ``submit``."""
        return f"{self.prefix}multipart"

    @property
    def dlq(self) -> str:
        """Dead letters: records a stage could not decode, with why and where from (one
        partition, so an offset numbers each one; compacted on the source coordinates)."""
        return f"{self.prefix}dlq"

    def outbound(self, provider: str) -> str:
        """Routed messages waiting for one provider's binds."""
        return f"{self.prefix}out.{provider}"

    def specs(self, partitions: int) -> list[TopicSpec]:
        # Compacted, and still bounded in time: a pairing or a delivered-marker
        # older than a week is of no use (receipts come within days at most).
        compact = {
            "cleanup.policy": "compact,delete",
            "retention.ms": WEEK_MS,
            "min.compaction.lag.ms": "60000",
        }
        return [
            TopicSpec.plain(self.submit, partitions),
            TopicSpec(self.message_state, partitions, compact),
            TopicSpec(self.sent, partitions, compact),
            TopicSpec.plain(self.inbound, partitions),
            TopicSpec.plain(self.deliver, partitions),
            TopicSpec(self.delivered, partitions, compact),
            TopicSpec(self.multipart, partitions, compact),
            TopicSpec(
                self.dlq,
                1,
                {**compact, "retention.ms": str(30 * 24 * 3600 * 1000)},  # a month to look
            ),
        ]
