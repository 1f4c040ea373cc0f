"""Whatever the listener accepts, the provider bind can encode (issue 10, invariant 9).

The property ties acceptance (`parse_submission`) to the provider side
(`reframe.outgoing` -> `connector.submit_fields` -> `codec.encode`, the encoder
the provider bind's session uses), so the two cannot drift apart: a field
limit relaxed at acceptance, or a field added to the provider's submit_sm
without a check at acceptance, makes this test find the value that breaks.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw.message import from_submission
from smsgw.pipeline.connector import submit_fields
from smsgw.reframe import SEGMENTATION_MODES, outgoing
from smsgw.smpp.codec import encode
from smsgw.smpp.pdu import DestAddress, FieldValue, Pdu, Tlv
from smsgw.smpp.submission import TLV_LENGTHS, Submission, parse_submission
from tests.helpers.depth import examples

# A C-Octet string as the wire decoder hands it over: any octets but NUL, any length.
cstr = st.binary(max_size=70).map(lambda b: b.replace(b"\0", b"1"))
octet = st.integers(0, 255)


def _mixed(good: list[str], bad: st.SearchStrategy[bytes] = cstr) -> st.SearchStrategy[bytes]:
    """Mostly plausible values (so many examples are accepted), sometimes anything."""
    return st.one_of(st.sampled_from([g.encode("latin-1") for g in good]), bad)


ADDRS = ["4917012345", "+4917012345", "Acme", "1" * 20, "1" * 21, "A" * 64]
TIMES = ["", "251231235959000+", "000000000020000R", "2512312359590000+", "251231235959049-"]
TAGS = [*TLV_LENGTHS, 0x0424, 0x1400, 0x3FFF, 0x4000, 0x0427]

tlv = st.tuples(st.sampled_from(TAGS), st.binary(max_size=30))
payload_tlv = st.tuples(st.just(0x0424), st.binary(max_size=400))
dest = st.builds(
    DestAddress,
    _mixed(ADDRS),
    st.sampled_from([0, 1, 5, 9]),
    st.sampled_from([0, 1, 2]),
    st.just(1),
)


@st.composite
def submissions(draw: st.DrawFn) -> tuple[str, Pdu]:
    command = draw(st.sampled_from(["submit_sm", "data_sm", "submit_multi"]))
    fields: dict[str, FieldValue] = {
        "service_type": draw(_mixed(["", "CMT", "CMT12", "CMT123", "WAP"])),
        "source_addr_ton": draw(st.one_of(st.sampled_from([0, 1, 5]), octet)),
        "source_addr_npi": draw(st.one_of(st.sampled_from([0, 1]), octet)),
        "source_addr": draw(_mixed(ADDRS)),
        "esm_class": draw(st.one_of(st.sampled_from([0, 0x40, 0x80, 0xC3]), octet)),
        "registered_delivery": draw(st.one_of(st.sampled_from([0, 1, 0x11]), octet)),
        "data_coding": draw(st.one_of(st.sampled_from([0, 3, 4, 8]), octet)),
    }
    if command == "submit_multi":
        fields["dest_addresses"] = tuple(draw(st.lists(dest, min_size=1, max_size=3)))
    else:
        fields["dest_addr_ton"] = draw(st.one_of(st.sampled_from([0, 1]), octet))
        fields["dest_addr_npi"] = draw(st.one_of(st.sampled_from([0, 1]), octet))
        fields["destination_addr"] = draw(_mixed(ADDRS))
    if command != "data_sm":
        fields.update(
            protocol_id=draw(octet),
            priority_flag=draw(st.one_of(st.integers(0, 3), octet)),
            schedule_delivery_time=draw(_mixed(TIMES)),
            validity_period=draw(_mixed(TIMES)),
            replace_if_present_flag=draw(st.one_of(st.integers(0, 1), octet)),
            sm_default_msg_id=draw(octet),
            short_message=draw(st.binary(max_size=260)),
        )
    tlvs: list[Tlv] = draw(st.lists(tlv, max_size=4))
    if draw(st.booleans()):
        tlvs.append(draw(payload_tlv))
    return command, Pdu(command, 1, 0, fields, tuple(tlvs))


@settings(max_examples=examples(1500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(submissions())
def test_every_accepted_submission_encodes_for_the_provider(case: tuple[str, Pdu]) -> None:
    command, pdu = case
    parsed = parse_submission(command, pdu)
    if not isinstance(parsed, Submission):
        return
    ids = [f"id{i}" for i in range(len(parsed.destinations))]
    for m in from_submission(parsed, ids=ids, customer="c", bind="n/1", received_at=0.0):
        for mode in SEGMENTATION_MODES:
            for part in outgoing((m,), {}, mode=mode, ref=7):
                fields, tlvs = submit_fields(part.message)
                encode(Pdu("submit_sm", 1, 0, fields, tuple(tlvs)))  # raises EncodeError if not


def test_the_issue_example_is_refused_not_accepted() -> None:
    """The regression of issue 10 item 1, pinned: "CMT123" never reaches the provider side."""
    pdu = Pdu(
        "submit_sm",
        1,
        0,
        {"service_type": b"CMT123", "source_addr": b"Acme", "source_addr_ton": 5,
         "destination_addr": b"4917012345", "dest_addr_ton": 1, "dest_addr_npi": 1,
         "short_message": b"hi"},
    )  # fmt: skip
    result = parse_submission("submit_sm", pdu)
    assert not isinstance(result, Submission)
    assert result.status == 0x15
