from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw.message import RecordError, decode, encode, from_submission
from smsgw.smpp.submission import Address, Submission
from smsgw.smpp.udh import Concat


def _submission(**kw: object) -> Submission:
    base: dict[str, object] = dict(
        command="submit_sm",
        service_type="",
        source=Address("4915100000001", 1, 1),
        destinations=(Address("4917600000002", 1, 1),),
        esm_class=0x40,
        protocol_id=0,
        priority_flag=1,
        schedule_delivery_time="",
        validity_period="000001000000000R",
        registered_delivery=1,
        replace_if_present=0,
        data_coding=8,
        sm_default_msg_id=0,
        short_message=b"\x05\x00\x03\x2a\x02\x01\x00A",
        message_payload=None,
        udh=b"\x05\x00\x03\x2a\x02\x01",
        concat=Concat(0x2A, 2, 1, 8, "udh"),
        text="A",
        tlvs={0x0426: b"\x01"},
    )
    base.update(kw)
    return Submission(**base)  # type: ignore[arg-type]


def test_record_roundtrips_every_field() -> None:
    [m] = from_submission(_submission(), ids=["123"], customer="acme", bind="n/1", received_at=1.5)
    assert decode(encode(m)) == m


@given(st.binary(max_size=300), st.one_of(st.none(), st.binary(max_size=2000)))
def test_record_keeps_original_octets(short: bytes, payload: bytes | None) -> None:
    sub = _submission(short_message=short, message_payload=payload, udh=None, concat=None)
    [m] = from_submission(sub, ids=["9"], customer="c", bind="b", received_at=0.0)
    back = decode(encode(m))
    assert back.short_message == short and back.message_payload == payload


def test_parts_of_one_message_share_a_kafka_key_and_single_messages_do_not() -> None:
    p1 = from_submission(_submission(), ids=["1"], customer="c", bind="a", received_at=0)[0]
    p2 = from_submission(
        _submission(concat=Concat(0x2A, 2, 2, 8, "udh")),
        ids=["2"],
        customer="c",
        bind="b",
        received_at=0,
    )[0]
    assert p1.kafka_key == p2.kafka_key
    s1, s2 = (
        from_submission(_submission(concat=None), ids=[i], customer="c", bind="a", received_at=0)[0]
        for i in ("7", "8")
    )
    assert s1.kafka_key != s2.kafka_key


def test_submit_multi_gives_one_record_per_destination() -> None:
    dests = (Address("491700001", 1, 1), Address("491700002", 1, 1))
    ms = from_submission(
        _submission(command="submit_multi", destinations=dests),
        ids=["5", "5"],
        customer="c",
        bind="b",
        received_at=0,
    )
    assert [m.destination for m in ms] == list(dests)
    with pytest.raises(ValueError):
        from_submission(
            _submission(destinations=dests), ids=["5"], customer="c", bind="b", received_at=0
        )


def test_unreadable_records_raise_record_error() -> None:
    for raw in (b"not json", b'{"v": 99}', b'{"v": 1}'):
        with pytest.raises(RecordError):
            decode(raw)
