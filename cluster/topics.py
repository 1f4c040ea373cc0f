"""Topic provisioning for the embedded stack (the logic lives in smsgw.kafka.admin)."""

from smsgw.kafka.admin import check_replication, ensure_topics

__all__ = ["check_replication", "ensure_topics"]
