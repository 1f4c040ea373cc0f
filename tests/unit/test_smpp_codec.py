"""Codec: smpplib is the reference; our wrapper must be byte-identical to it."""

import struct
from typing import Any

import pytest
import smpplib.smpp  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.smpp.codec import SMPPLIB_COMMANDS, SPECS, decode, encode
from smsgw.smpp.framing import Framer, FramingError
from smsgw.smpp.pdu import DecodeError, DestAddress, EncodeError, Pdu, UnsuccessSme
from smsgw.smpp.status import CommandStatus as S
from smsgw.smpp.wire import walk_mandatory
from tests.helpers.depth import examples


def smpplib_raw(command: str, seq: int, **fields: Any) -> bytes:
    pdu = smpplib.smpp.make_pdu(command, client=None, sequence=seq, **fields)
    pdu.sequence = seq
    frame: bytes = pdu.generate()
    return frame


def with_length(frame: bytes) -> bytes:
    return struct.pack(">L", len(frame)) + frame[4:]


def test_smpplib_lacks_what_we_hand_write() -> None:
    assert "submit_sm" in SMPPLIB_COMMANDS
    assert {"submit_multi", "submit_multi_resp", "cancel_sm", "replace_sm", "outbind"}.isdisjoint(
        SMPPLIB_COMMANDS
    )


def test_decode_submit_sm() -> None:
    frame = smpplib_raw(
        "submit_sm",
        7,
        source_addr="Acme",
        destination_addr="4917012345",
        esm_class=0x40,
        data_coding=8,
        short_message=b"\x05\x00\x03\x01\x02\x01hi",
    )
    pdu = decode(frame)
    assert (pdu.command, pdu.sequence, pdu.status) == ("submit_sm", 7, 0)
    assert pdu.get_str("source_addr") == "Acme"
    assert pdu.get_int("esm_class") == 0x40
    assert pdu.get_bytes("short_message") == b"\x05\x00\x03\x01\x02\x01hi"
    assert encode(pdu) == frame


def test_tlvs_kept_raw_in_wire_order_including_unknown() -> None:
    base = smpplib_raw("submit_sm", 1, source_addr="a", destination_addr="b")
    tlvs = b"\x14\x00\x00\x02ab" + b"\x04\x26\x00\x01\x01" + b"\x13\x0c\x00\x00"
    frame = with_length(base + tlvs)
    pdu = decode(frame)
    assert pdu.tlvs == ((0x1400, b"ab"), (0x0426, b"\x01"), (0x130C, b""))
    assert pdu.tlv(0x0426) == b"\x01" and pdu.tlv(0x9999) is None
    assert encode(pdu) == frame


@pytest.mark.parametrize(
    ("tail", "status"),
    [
        (b"\x04\x24\x00", S.ESME_RINVOPTPARSTREAM),  # truncated TLV header
        (b"\x04\x24\x00\x05ab", S.ESME_RINVOPTPARSTREAM),  # value runs past the end
        (b"\x02\x0c\x00\x01\x01", S.ESME_RINVPARLEN),  # sar_msg_ref_num must be 2 octets
    ],
)
def test_bad_tlvs(tail: bytes, status: S) -> None:
    frame = with_length(smpplib_raw("submit_sm", 5, source_addr="a", destination_addr="b") + tail)
    with pytest.raises(DecodeError) as err:
        decode(frame)
    assert err.value.status == status
    assert err.value.sequence == 5 and err.value.command_id == 4


def test_header_errors() -> None:
    with pytest.raises(DecodeError) as err:
        decode(b"\x00" * 10)
    assert err.value.status == S.ESME_RINVCMDLEN and err.value.sequence is None
    with pytest.raises(DecodeError) as err:
        decode(struct.pack(">LLLL", 17, 0x15, 0, 3))
    assert err.value.status == S.ESME_RINVCMDLEN and err.value.sequence == 3
    with pytest.raises(DecodeError) as err:
        decode(struct.pack(">LLLL", 16, 0x1234, 0, 3))
    assert err.value.status == S.ESME_RINVCMDID


def test_truncated_mandatory_part() -> None:
    full = smpplib_raw(
        "submit_sm", 2, source_addr="abc", destination_addr="49", short_message=b"xyz"
    )
    for cut in range(17, len(full) - 3):  # everything shorter than the whole mandatory part
        with pytest.raises(DecodeError) as err:
            decode(with_length(full[:cut]))
        assert err.value.status in (S.ESME_RINVCMDLEN, S.ESME_RINVMSGLEN)


def test_sm_length_beyond_body_is_rinvmsglen() -> None:
    frame = bytearray(
        smpplib_raw("submit_sm", 2, source_addr="a", destination_addr="b", short_message=b"xy")
    )
    frame[-3] = 200  # sm_length
    with pytest.raises(DecodeError) as err:
        decode(bytes(frame))
    assert err.value.status == S.ESME_RINVMSGLEN


def test_response_without_body_is_accepted() -> None:
    pdu = decode(struct.pack(">LLLL", 16, 0x80000005, 0, 9))
    assert pdu.command == "deliver_sm_resp" and pdu.get_str("message_id") == ""


def test_error_response_is_encoded_without_body() -> None:
    frame = encode(Pdu("submit_sm_resp", 4, S.ESME_RTHROTTLED, {"message_id": "x"}))
    assert frame == struct.pack(">LLLL", 16, 0x80000004, 0x58, 4)
    assert decode(frame).status == 0x58


def test_bind_keeps_interface_version_and_sequence() -> None:
    # smpplib itself would overwrite both (sequence -> 0, interface_version -> 0x34)
    pdu = Pdu(
        "bind_transmitter",
        123,
        0,
        {"system_id": "acme", "password": "pw", "interface_version": 0x33},
    )
    frame = encode(pdu)
    assert struct.unpack(">L", frame[12:16])[0] == 123
    assert decode(frame).get_int("interface_version") == 0x33


def test_encode_refuses_instead_of_truncating() -> None:
    with pytest.raises(EncodeError):
        encode(Pdu("submit_sm", 1, 0, {"source_addr": "x" * 21}))
    with pytest.raises(EncodeError):
        encode(Pdu("submit_sm", 1, 0, {"esm_class": 256}))
    with pytest.raises(EncodeError):
        encode(Pdu("no_such_command", 1))


def test_submit_multi_roundtrip() -> None:
    dests = (DestAddress(b"4917012345", 1, 1), DestAddress(b"friends", flag=2))
    pdu = Pdu(
        "submit_multi",
        8,
        0,
        {"source_addr": "Acme", "dest_addresses": dests, "short_message": b"hello"},
        ((0x0426, b"\x01"),),
    )
    frame = encode(pdu)
    back = decode(frame)
    assert back.dests() == dests
    assert back.get_int("number_of_dests") == 2 and back.get_int("sm_length") == 5
    assert encode(back) == frame


def test_submit_multi_bad_dest_flag() -> None:
    pdu = Pdu("submit_multi", 8, 0, {"dest_addresses": (DestAddress(b"49"),)})
    frame = bytearray(encode(pdu))
    frame[16 + 1 + 2 + 1 + 1] = 3  # the dest_flag after service_type, ton, npi, source, count
    with pytest.raises(DecodeError) as err:
        decode(bytes(frame))
    assert err.value.status == S.ESME_RINVDESTFLAG


def test_submit_multi_resp_roundtrip() -> None:
    pdu = Pdu(
        "submit_multi_resp",
        3,
        0,
        {"message_id": "m", "unsuccess_smes": (UnsuccessSme(b"1", 1, 1, 0x0B),)},
    )
    assert decode(encode(pdu)).unsuccess() == (UnsuccessSme(b"1", 1, 1, 0x0B),)


def test_framer_partial_and_errors() -> None:
    f = Framer(max_pdu_size=100)
    frame = struct.pack(">LLLL", 16, 0x15, 0, 1)
    f.feed(frame[:10])
    assert f.next_frame() is None
    f.feed(frame[10:] + frame)
    assert f.next_frame() == frame and f.next_frame() == frame and f.next_frame() is None
    f.feed(struct.pack(">LLLL", 101, 4, 0, 9))
    with pytest.raises(FramingError) as err:
        f.next_frame()
    assert err.value.sequence == 9 and err.value.close


# ---------------------------------------------------------------- properties
def cstring(n: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=n)


octet = st.integers(0, 255)
tlv = st.tuples(
    st.integers(0x1400, 0x3FFF),
    st.binary(max_size=20),  # vendor range: free lengths
) | st.tuples(st.sampled_from([0x0424, 0x001E, 0x0202]), st.binary(max_size=40))


@st.composite
def submit_sm_fields(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "service_type": draw(cstring(5)),
        "source_addr_ton": draw(octet),
        "source_addr_npi": draw(octet),
        "source_addr": draw(cstring(20)),
        "dest_addr_ton": draw(octet),
        "dest_addr_npi": draw(octet),
        "destination_addr": draw(cstring(20)),
        "esm_class": draw(octet),
        "protocol_id": draw(octet),
        "priority_flag": draw(octet),
        "schedule_delivery_time": draw(cstring(16)),
        "validity_period": draw(cstring(16)),
        "registered_delivery": draw(octet),
        "replace_if_present_flag": draw(octet),
        "data_coding": draw(octet),
        "sm_default_msg_id": draw(octet),
        "short_message": draw(st.binary(max_size=254)),
    }


@settings(max_examples=examples(200), deadline=None)
@given(fields=submit_sm_fields(), seq=st.integers(1, 0x7FFFFFFF), tlvs=st.lists(tlv, max_size=4))
def test_submit_sm_roundtrip_is_byte_identical_to_smpplib(
    fields: dict[str, Any], seq: int, tlvs: list[tuple[int, bytes]]
) -> None:
    reference = smpplib_raw("submit_sm", seq, **fields)
    frame = with_length(reference + b"".join(struct.pack(">HH", t, len(v)) + v for t, v in tlvs))
    pdu = decode(frame)
    assert encode(pdu) == frame
    assert pdu.tlvs == tuple(tlvs)
    assert encode(Pdu("submit_sm", seq, 0, fields)) == reference
    # the validating walker reads exactly what smpplib reads
    walked, _end = walk_mandatory(SPECS["submit_sm"], frame[16:], allow_short=False)
    assert walked == dict(pdu.fields)


@settings(max_examples=examples(100), deadline=None)
@given(fields=submit_sm_fields(), seq=st.integers(1, 0x7FFFFFFF))
def test_deliver_and_data_sm_roundtrip(fields: dict[str, Any], seq: int) -> None:
    reference = smpplib_raw("deliver_sm", seq, **fields)
    assert encode(decode(reference)) == reference
    data_fields = {
        k: v for k, v in fields.items() if k in dict((f, 1) for f, *_ in SPECS["data_sm"])
    }
    reference = smpplib_raw("data_sm", seq, **data_fields)
    assert encode(decode(reference)) == reference


@settings(max_examples=examples(300), deadline=None)
@given(body=st.binary(max_size=120), command_id=st.sampled_from([4, 0x21, 0x103, 3, 1, 0x80000004]))
def test_decode_only_raises_decode_error(body: bytes, command_id: int) -> None:
    frame = struct.pack(">LLLL", 16 + len(body), command_id, 0, 1) + body
    try:
        decode(frame)
    except DecodeError as err:
        assert err.sequence == 1
