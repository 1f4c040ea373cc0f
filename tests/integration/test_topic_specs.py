"""Topics made on demand carry the gateway's own configuration, not the broker's defaults."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    ConfigSource,
    ResourceType,
)

from smsgw.kafka.admin import ensure_topic_names
from smsgw.kafka.security import client_config
from smsgw.topics import WEEK_MS, Topics

pytestmark = pytest.mark.integration


def _topic_config(bootstrap: str, topic: str) -> dict[str, tuple[str, ConfigSource]]:
    admin = AdminClient(client_config(bootstrap))
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    return {name: (e.value, ConfigSource(e.source)) for name, e in entries.items()}


def test_provider_topic_made_on_demand_keeps_the_gateways_retention(bootstrap: str) -> None:
    """``out.<provider>`` is created when a provider first appears (router, supervisor,
    PipelineNode, all through ``ensure_topic_names``): it must get the week of retention
    the gateway sets on its other plain topics, set on the topic itself, rather than
    whatever the broker's ``log.retention.*`` happens to be (issue 13: before, none)."""
    topic = Topics(prefix=f"t{uuid.uuid4().hex[:10]}.").outbound("acme")
    assert ensure_topic_names(bootstrap, {topic}, 2) == [topic]
    value, source = _topic_config(bootstrap, topic)["retention.ms"]
    assert (value, source) == (WEEK_MS, ConfigSource.DYNAMIC_TOPIC_CONFIG)
