"""Splitting and UDH of the load generator's messages."""

from benchmarks.loadgen.messages import (
    GSM_LONG,
    TEMPLATES,
    UCS2_LONG,
    MessageSource,
    concat_udh,
    gsm_split,
    ucs2_split,
)


def test_gsm_split_keeps_escape_pairs_whole():
    parts = gsm_split(GSM_LONG)
    assert len(parts) == 3
    assert all(len(p) <= 153 for p in parts)
    assert not any(p.endswith(b"\x1b") for p in parts)
    assert b"".join(parts) == GSM_LONG.encode("gsm03.38")
    # the euro sign sits on the boundary: part 1 had to stop one septet short
    assert len(parts[0]) == 152 and parts[1].startswith(b"\x1be")


def test_gsm_single_part_up_to_160_septets():
    assert gsm_split("a" * 160) == [b"a" * 160]
    assert [len(p) for p in gsm_split("a" * 161)] == [153, 8]


def test_ucs2_split_keeps_surrogate_pairs_whole():
    parts = ucs2_split(UCS2_LONG)
    assert all(len(p) <= 134 and len(p) % 2 == 0 for p in parts)
    assert "".join(p.decode("utf-16-be") for p in parts) == UCS2_LONG
    assert ucs2_split("é" * 70) == ["é".encode("utf-16-be") * 70]


def test_concat_udh_layout():
    assert concat_udh(0x1A2, 3, 2) == bytes.fromhex("050003a20302")


def test_source_parts_of_one_message_share_ref_and_only_part_one_asks():
    source = MessageSource(
        mix={"gsm": 1.0},
        multipart_share=1.0,
        registered_delivery=1,
        receipt_all_parts=False,
        source="12345",
        dest_prefix="4477",
        limit=2,
    )
    parts = [p for p in iter(source.next_part, None)]
    assert len(parts) == 2 * len(TEMPLATES["gsm", True].parts)
    first = parts[:3]
    bodies = [p.fields["short_message"] for p in first]
    udhs = [b[:6] for b in bodies if isinstance(b, bytes)]
    assert [u[3] for u in udhs] == [udhs[0][3]] * 3
    assert [u[5] for u in udhs] == [1, 2, 3]
    assert [p.wants_receipt for p in first] == [True, False, False]
    assert [p.fields["esm_class"] for p in first] == [0x40] * 3
    assert source.exhausted and source.messages == 2
