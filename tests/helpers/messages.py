"""AcceptedMessage records for unit tests: one set of defaults, fields overridden by name."""

from __future__ import annotations

import dataclasses
from typing import Any

from smsgw.message import AcceptedMessage
from smsgw.smpp.submission import Address

_DEFAULT = AcceptedMessage(
    id="",
    customer="acme",
    bind="node-1/session-1",
    command="submit_sm",
    source=Address("ACME", 5, 0),
    destination=Address("491701234567", 1, 1),
    service_type="",
    esm_class=0,
    protocol_id=0,
    priority=0,
    schedule_delivery_time="",
    validity_period="",
    registered_delivery=1,
    replace_if_present=0,
    data_coding=0,
    sm_default_msg_id=0,
    short_message=b"",
    message_payload=None,
    udh=None,
    concat=None,
    received_at=1000.0,
)


def accepted_message(mid: str, **fields: Any) -> AcceptedMessage:
    return dataclasses.replace(_DEFAULT, id=mid, **fields)
