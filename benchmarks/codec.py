"""`python -m benchmarks.codec`: CPU per PDU of the SMPP codec, fast path vs smpplib.

Encodes and decodes the PDUs one message makes the gateway handle, through
`smsgw.smpp.codec` (the byte-level fast path for submit_sm, deliver_sm and
their responses) and through `encode_reference`/`decode_reference` (the
python-smpplib path the codec used before, still its fallback). Per message
the gateway does eight of these (listener: decode submit_sm, encode its resp,
encode the receipt deliver_sm, decode its resp; provider bind: the mirror
image), so the last line adds them up.

CPU time (`time.process_time`), best of `--repeat` rounds of `--number`
calls each: the machine is shared, and the best round is the one least
disturbed by the neighbours.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial

import click

from smsgw.smpp.codec import decode, decode_reference, encode, encode_reference
from smsgw.smpp.pdu import Pdu

RECEIPT_TEXT = (
    b"id:A0001234 sub:001 dlvrd:001 submit date:2611301612 done date:2611301612 "
    b"stat:DELIVRD err:000 text:Hello from the benchmark"
)

# The PDUs of one message's round trip, as the gateway builds and reads them.
SAMPLES: dict[str, Pdu] = {
    "submit_sm (160 GSM chars)": Pdu(
        "submit_sm",
        1234,
        0,
        {
            "source_addr_ton": 5,
            "source_addr_npi": 0,
            "source_addr": b"Bench",
            "dest_addr_ton": 1,
            "dest_addr_npi": 1,
            "destination_addr": b"447700900123",
            "registered_delivery": 1,
            "data_coding": 0,
            "short_message": b"x" * 160,
        },
    ),
    "submit_sm (UDH part, UCS2)": Pdu(
        "submit_sm",
        1235,
        0,
        {
            "source_addr": b"Bench",
            "destination_addr": b"447700900123",
            "esm_class": 0x40,
            "registered_delivery": 1,
            "data_coding": 8,
            "short_message": b"\x05\x00\x03\x2a\x02\x01" + "é".encode("utf-16-be") * 67,
        },
    ),
    "submit_sm_resp": Pdu(
        "submit_sm_resp", 1234, 0, {"message_id": b"0193b5f2-7c1e-7a4b-9d2e-0a1b2c3d4e5f"}
    ),
    "deliver_sm (receipt, 3 TLVs)": Pdu(
        "deliver_sm",
        77,
        0,
        {
            "source_addr": b"447700900123",
            "destination_addr": b"Bench",
            "esm_class": 0x04,
            "short_message": RECEIPT_TEXT,
        },
        ((0x001E, b"A0001234\0"), (0x0427, b"\x02"), (0x0423, b"\x03\x00\x00")),
    ),
    "deliver_sm_resp": Pdu("deliver_sm_resp", 77, 0, {"message_id": b""}),
}
PER_MESSAGE = {  # (encodes, decodes) of each sample in one message's round trip
    "submit_sm (160 GSM chars)": (1, 1),
    "submit_sm_resp": (1, 1),
    "deliver_sm (receipt, 3 TLVs)": (1, 1),
    "deliver_sm_resp": (1, 1),
}


def _cpu_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(number):
            fn()
        best = min(best, time.process_time() - t0)
    return 1e6 * best / number


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--number", default=20_000, show_default=True, help="Calls per round.")
@click.option("--repeat", default=5, show_default=True, help="Rounds (the best is reported).")
def main(number: int, repeat: int) -> None:
    """Print µs of CPU per encode/decode, fast path vs smpplib, as JSON."""
    out: dict[str, dict[str, float]] = {}
    for name, pdu in SAMPLES.items():
        frame = encode_reference(pdu)
        assert encode(pdu) == frame and decode(frame) == decode_reference(frame)
        row = {
            "encode_smpplib_us": _cpu_us(partial(encode_reference, pdu), number, repeat),
            "encode_fast_us": _cpu_us(partial(encode, pdu), number, repeat),
            "decode_smpplib_us": _cpu_us(partial(decode_reference, frame), number, repeat),
            "decode_fast_us": _cpu_us(partial(decode, frame), number, repeat),
        }
        out[name] = {k: round(v, 2) for k, v in row.items()}
    ref = fast = 0.0
    for name, (enc, dec) in PER_MESSAGE.items():
        r = out[name]
        ref += enc * r["encode_smpplib_us"] + dec * r["decode_smpplib_us"]
        fast += enc * r["encode_fast_us"] + dec * r["decode_fast_us"]
    out["per message (8 codec calls in the gateway)"] = {
        "smpplib_us": round(ref, 1),
        "fast_us": round(fast, 1),
        "saved_us": round(ref - fast, 1),
    }
    click.echo(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
