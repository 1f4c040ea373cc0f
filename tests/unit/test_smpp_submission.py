"""Submission validation: one test per rejection status, plus message understanding."""

from typing import Any

import pytest
import smpplib.smpp  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.smpp.codec import decode
from smsgw.smpp.pdu import DestAddress, FieldValue, Pdu, Tlv
from smsgw.smpp.status import CommandStatus as S
from smsgw.smpp.submission import Address, Rejection, Submission, decode_text, parse_submission
from smsgw.smpp.udh import Concat, UdhError, concat_info, parse_udh, split_udh
from tests.helpers.depth import examples

BASE: dict[str, FieldValue] = {
    "source_addr": "Acme",
    "source_addr_ton": 5,
    "source_addr_npi": 0,
    "destination_addr": "4917012345",
    "dest_addr_ton": 1,
    "dest_addr_npi": 1,
    "short_message": b"hello",
}


def sm(tlvs: tuple[Tlv, ...] = (), command: str = "submit_sm", **fields: Any) -> Pdu:
    return Pdu(command, 1, 0, {**BASE, **fields}, tlvs)


def sm_dict(fields: dict[str, FieldValue], tlvs: tuple[Tlv, ...] = ()) -> Pdu:
    return Pdu("submit_sm", 1, 0, {**BASE, **fields}, tlvs)


def ok(pdu: Pdu, command: str = "submit_sm") -> Submission:
    result = parse_submission(command, pdu)
    assert isinstance(result, Submission), result
    return result


def rejected(pdu: Pdu, command: str = "submit_sm") -> S:
    result = parse_submission(command, pdu)
    assert isinstance(result, Rejection), result
    return result.status


def test_plain_gsm_submit_through_the_codec() -> None:
    frame = smpplib.smpp.make_pdu(
        "submit_sm", client=None, sequence=1, source_addr="Acme", source_addr_ton=5,
        destination_addr="+4917012345", dest_addr_ton=1, dest_addr_npi=1,
        registered_delivery=1, short_message="Hi €[".encode("gsm03.38"),
    ).generate()  # fmt: skip
    sub = ok(decode(frame))
    assert sub.source == Address("Acme", 5, 0)
    assert sub.destinations == (Address("+4917012345", 1, 1),)
    assert sub.text == "Hi €["
    assert sub.short_message == b"Hi \x1be\x1b<"
    assert sub.wants_receipt and sub.udh is None and sub.concat is None


@pytest.mark.parametrize(
    ("dcs", "body", "text"),
    [
        (1, b"plain", "plain"),
        (3, "café".encode("latin-1"), "café"),
        (8, "Привет".encode("utf-16-be"), "Привет"),
        (4, b"\x00\xff", None),
        (2, b"\x00\xff", None),
        (0xF0, b"Flash", "Flash"),
        (0xF4, b"\x01", None),
        (0, b"\x80bad", None),  # undecodable GSM is accepted, text unknown
        (8, b"\x00A\x00", None),  # odd-length UCS2
        (0, b"abc\x1b", None),  # dangling escape
    ],
)
def test_text_decoding(dcs: int, body: bytes, text: str | None) -> None:
    sub = ok(sm(data_coding=dcs, short_message=body))
    assert sub.text == text
    assert sub.short_message == body


def test_reserved_dcs_is_rinvdcs() -> None:
    for dcs in (0x0B, 0x0C, 0x0F, 0x55, 0xBF):
        assert rejected(sm(data_coding=dcs)) == S.ESME_RINVDCS


def test_udh_concat_8bit() -> None:
    body = b"\x05\x00\x03\x2a\x03\x02" + b"part two"
    sub = ok(sm(esm_class=0x43, short_message=body))
    assert sub.udh == b"\x05\x00\x03\x2a\x03\x02"
    assert sub.concat == Concat(0x2A, 3, 2, 8, "udh")
    assert sub.text == "part two"


def test_udh_concat_16bit_in_payload() -> None:
    body = b"\x06\x08\x04\x12\x34\x02\x01" + "Ü".encode("utf-16-be")
    sub = ok(sm(((0x0424, body),), esm_class=0x40, short_message=b"", data_coding=8))
    assert sub.concat == Concat(0x1234, 2, 1, 16, "udh")
    assert sub.message_payload == body and sub.user_data == body
    assert sub.text == "Ü"


def test_sar_tlvs() -> None:
    tlvs = ((0x020C, b"\x01\x02"), (0x020E, b"\x02"), (0x020F, b"\x01"), (0x1400, b"x"))
    sub = ok(sm(tlvs=tlvs))
    assert sub.concat == Concat(0x0102, 2, 1, 16, "sar")
    assert sub.tlvs == {0x1400: b"x"}


def test_sar_incomplete_and_invalid() -> None:
    assert rejected(sm(tlvs=((0x020C, b"\x00\x01"),))) == S.ESME_RMISSINGOPTPARAM
    bad = ((0x020C, b"\x00\x01"), (0x020E, b"\x02"), (0x020F, b"\x03"))
    assert rejected(sm(tlvs=bad)) == S.ESME_RINVOPTPARAMVAL


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x05\x00\x03\x01",
        b"\x03\x00\x05\x01",
        b"\x05\x00\x03\x01\x00\x01",
        b"\x04\x00\x02\x01\x01",
    ],
)
def test_bad_udh_is_rinvmsglen(body: bytes) -> None:
    assert rejected(sm(esm_class=0x40, short_message=body)) == S.ESME_RINVMSGLEN


def test_short_message_and_payload_together() -> None:
    assert rejected(sm(tlvs=((0x0424, b"x"),))) == S.ESME_RINVMSGLEN


def test_short_message_too_long() -> None:
    assert rejected(sm(short_message=b"x" * 255)) == S.ESME_RINVMSGLEN
    assert ok(sm(short_message=b"x" * 254))


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"source_addr": ""}, S.ESME_RINVSRCADR),
        ({"source_addr": "1" * 21}, S.ESME_RINVSRCADR),
        ({"source_addr": "49x", "source_addr_ton": 1, "source_addr_npi": 1}, S.ESME_RINVSRCADR),
        ({"source_addr": b"\xffab"}, S.ESME_RINVSRCADR),
        ({"source_addr_ton": 7}, S.ESME_RINVSRCTON),
        ({"source_addr_npi": 2}, S.ESME_RINVSRCNPI),
        ({"destination_addr": ""}, S.ESME_RINVDSTADR),
        ({"destination_addr": "1" * 21}, S.ESME_RINVDSTADR),
        ({"destination_addr": "49 170"}, S.ESME_RINVDSTADR),
        ({"destination_addr": "abc", "dest_addr_ton": 0, "dest_addr_npi": 1}, S.ESME_RINVDSTADR),
        ({"dest_addr_ton": 5}, S.ESME_RINVDSTTON),
        ({"dest_addr_npi": 7}, S.ESME_RINVDSTNPI),
        ({"esm_class": 0x04}, S.ESME_RINVESMCLASS),  # a receipt, from a customer
        ({"esm_class": 0x20}, S.ESME_RINVESMCLASS),
        ({"esm_class": 0x02}, S.ESME_RINVESMCLASS),  # forward mode
        ({"registered_delivery": 0x03}, S.ESME_RINVREGDLVFLG),
        ({"registered_delivery": 0x21}, S.ESME_RINVREGDLVFLG),
        ({"priority_flag": 4}, S.ESME_RINVPRTFLG),
        ({"replace_if_present_flag": 2}, S.ESME_RINVREPFLAG),
        ({"schedule_delivery_time": "tomorrow"}, S.ESME_RINVSCHED),
        ({"validity_period": "000001000000000"}, S.ESME_RINVEXPIRY),
        # Issue 10: what was accepted and then failed to encode for the provider.
        ({"service_type": "CMT123"}, S.ESME_RINVSERTYP),  # §5.2.11: 5 + NUL
        ({"service_type": "x" * 40}, S.ESME_RINVSERTYP),
        ({"schedule_delivery_time": "2512312359590000+"}, S.ESME_RINVSCHED),  # 17 + NUL
        ({"schedule_delivery_time": "251332235959000+"}, S.ESME_RINVSCHED),  # month 13
        ({"schedule_delivery_time": "250230120000000+"}, S.ESME_RINVSCHED),  # 30 February
        ({"validity_period": "251231245959000+"}, S.ESME_RINVEXPIRY),  # hour 24
        ({"validity_period": "251231235959049+"}, S.ESME_RINVEXPIRY),  # offset > 48 quarters
        ({"validity_period": "251231235959000X"}, S.ESME_RINVEXPIRY),
        ({"priority_flag": 255}, S.ESME_RINVPRTFLG),
        ({"registered_delivery": 0x80}, S.ESME_RINVREGDLVFLG),
        ({"replace_if_present_flag": 255}, S.ESME_RINVREPFLAG),
    ],
)
def test_rejections(fields: dict[str, FieldValue], status: S) -> None:
    assert rejected(sm_dict(fields)) == status


def test_accepted_edge_values() -> None:
    sub = ok(
        sm(
            esm_class=0xC3,
            registered_delivery=0x11,
            priority_flag=3,
            schedule_delivery_time="000001000000000R",
            validity_period="251231235959000+",
            short_message=b"\x00",
        )
    )
    assert sub.validity_period == "251231235959000+"


def test_data_sm_uses_message_payload() -> None:
    pdu = Pdu(
        "data_sm", 1, 0,
        {"source_addr": "a" * 20, "destination_addr": "4917012345", "dest_addr_ton": 1},
        ((0x0424, b"payload"),),
    )  # fmt: skip
    sub = ok(pdu, "data_sm")
    assert sub.message_payload == b"payload" and sub.short_message == b""
    assert sub.text == "payload"


def test_data_sm_addresses_are_held_to_the_submit_sm_we_send() -> None:
    """data_sm allows 64 characters, but it leaves as submit_sm (20): refuse, not fail later."""
    long_source: dict[str, FieldValue] = {
        "source_addr": "a" * 21,
        "destination_addr": "4917012345",
        "dest_addr_ton": 1,
    }
    pdu = Pdu("data_sm", 1, 0, long_source, ((0x0424, b"payload"),))
    assert rejected(pdu, "data_sm") == S.ESME_RINVSRCADR
    long_dest: dict[str, FieldValue] = {
        "source_addr": "Acme",
        "destination_addr": "4" * 21,
        "dest_addr_ton": 1,
    }
    pdu = Pdu("data_sm", 1, 0, long_dest, ((0x0424, b"payload"),))
    assert rejected(pdu, "data_sm") == S.ESME_RINVDSTADR


def test_service_type_of_five_is_accepted() -> None:
    assert ok(sm(service_type="CMT12")).service_type == "CMT12"


@pytest.mark.parametrize(
    ("tlvs", "status"),
    [
        (((0x0204, b"\x01"),), S.ESME_RINVPARLEN),  # user_message_reference is 2 octets
        (((0x020A, b"\x00\x01\x02"),), S.ESME_RINVPARLEN),  # source_port
        (((0x0381, b"\x01"),), S.ESME_RINVPARLEN),  # callback_num is 4-19
        (((0x0381, b"1" * 20),), S.ESME_RINVPARLEN),
        (((0x0202, b"\xa0" + b"1" * 23),), S.ESME_RINVPARLEN),  # source_subaddress 2-23
        (((0x0303, b"x" * 66),), S.ESME_RINVPARLEN),  # callback_num_atag up to 65
        (((0x130C, b"\x01"),), S.ESME_RINVPARLEN),  # alert_on_message_delivery is empty
        (((0x0017, b"\x00\x01"),), S.ESME_RINVPARLEN),  # data_sm's qos_time_to_live: 4
        (((0x0019, b"\x02"),), S.ESME_RINVOPTPARAMVAL),  # payload_type 0 or 1
        (((0x0426, b"\x02"),), S.ESME_RINVOPTPARAMVAL),  # more_messages_to_send 0 or 1
        (((0x0201, b"\x04"),), S.ESME_RINVOPTPARAMVAL),  # privacy_indicator 0-3
    ],
)
def test_tlv_lengths_and_values(tlvs: tuple[Tlv, ...], status: S) -> None:
    assert rejected(sm(tlvs=tlvs)) == status


def test_only_tlvs_submit_sm_defines_are_forwarded() -> None:
    """§3.2.4: unknown TLVs may be ignored; data_sm-only ones are not sent as submit_sm's."""
    tlvs = ((0x0204, b"\x00\x07"), (0x0006, b"\x01"), (0x1500, b"vendor"), (0x4000, b"?"))
    sub = ok(sm(tlvs=tlvs))
    assert sub.tlvs == {0x0204: b"\x00\x07", 0x1500: b"vendor"}


def test_submit_multi() -> None:
    dests = (DestAddress(b"4917012345", 1, 1), DestAddress(b"4917054321", 1, 1))
    sub = ok(sm(command="submit_multi", dest_addresses=dests), "submit_multi")
    assert [d.addr for d in sub.destinations] == ["4917012345", "4917054321"]


def test_submit_multi_destination_errors() -> None:
    none: tuple[DestAddress, ...] = ()
    assert rejected(sm(command="submit_multi", dest_addresses=none), "submit_multi") == (
        S.ESME_RINVNUMDESTS
    )
    many = tuple(DestAddress(b"49170%05d" % i, 1, 1) for i in range(255))
    assert rejected(sm(command="submit_multi", dest_addresses=many), "submit_multi") == (
        S.ESME_RINVNUMDESTS
    )
    dl = (DestAddress(b"friends", flag=2),)
    assert rejected(sm(command="submit_multi", dest_addresses=dl), "submit_multi") == (
        S.ESME_RCNTSUBDL
    )
    bad = (DestAddress(b"", 1, 1),)
    assert rejected(sm(command="submit_multi", dest_addresses=bad), "submit_multi") == (
        S.ESME_RINVDSTADR
    )


def test_not_a_submission() -> None:
    assert rejected(sm(), "query_sm") == S.ESME_RINVCMDID


def test_udh_helpers() -> None:
    udh, rest = split_udh(b"\x05\x00\x03\x01\x02\x01body")
    assert rest == b"body"
    elements = parse_udh(udh)
    assert elements == [(0x00, b"\x01\x02\x01")]
    assert concat_info(elements) == Concat(1, 2, 1, 8, "udh")
    assert concat_info([(0x05, b"\x0b\x84\x23\xf0")]) is None  # port addressing only
    with pytest.raises(UdhError):
        concat_info([(0x00, b"\x01\x02")])
    with pytest.raises(UdhError):
        parse_udh(b"\x03\x00\x05\x01")


def test_decode_text_gsm_extension() -> None:
    assert decode_text(b"\x1b\x14\x1b\x28\x1b\x29", "gsm03.38") == "^{}"
    assert decode_text(b"a\x1b\x1bb", "gsm03.38") is None


@settings(max_examples=examples(300), deadline=None)
@given(
    fields=st.fixed_dictionaries(
        {},
        optional={
            "esm_class": st.integers(0, 255),
            "data_coding": st.integers(0, 255),
            "registered_delivery": st.integers(0, 255),
            "short_message": st.binary(max_size=260),
            "source_addr": st.binary(max_size=25),
            "destination_addr": st.binary(max_size=25),
            "source_addr_ton": st.integers(0, 255),
            "dest_addr_npi": st.integers(0, 255),
        },
    ),
    tlvs=st.lists(
        st.tuples(st.sampled_from([0x0424, 0x020C, 0x020E, 0x020F]), st.binary(max_size=8))
    ),
)
def test_never_raises(fields: dict[str, FieldValue], tlvs: list[Tlv]) -> None:
    result = parse_submission("submit_sm", sm_dict(fields, tuple(tlvs)))
    assert isinstance(result, Submission | Rejection)
