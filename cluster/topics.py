"""Topic provisioning for the embedded stack (the logic lives in smsgw.kafka.admin)."""

from smsgw.kafka.admin import ensure_topics

__all__ = ["ensure_topics"]
