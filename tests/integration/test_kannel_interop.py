"""Interop acceptance: Kannel (an independent SMPP implementation) as a customer.

Kannel's bearerbox binds to the gateway as an ESME (bind_transceiver) and
smsbox submits plain GSM text, UCS2 and a long, concatenated message through
its HTTP sendsms interface. Every submit must be accepted and land on the
gateway's Kafka submit topic with the customer's octets unchanged.

What Kannel 1.4.5 (Debian) puts on the wire, observed against a bare SMPP
server built on smsgw's Session (see tests/helpers/kannel.py):
- source "12345" and destination "49..." both as TON 2 / NPI 1;
- esm_class 0x03 (store-and-forward mode), 0x43 with a UDH;
- plain: data_coding 0, unpacked GSM septets, 0x1B escapes for € [ ] etc.;
- UCS2: data_coding 8, UTF-16BE;
- long: 8-bit UDH ``05 00 03 ref n i``, 153 septets (67 UCS2 characters) per
  part, never splitting a 0x1B escape across parts; TLV 0x0426
  (more_messages_to_send) = 01 on all parts but the last;
- registered_delivery 0x11 for dlr-mask 31 (0x01 for 27), and only on part 1
  of a long message; the id from submit_sm_resp comes back to smsbox as the
  "SMSC ack" (dlr type 8) with %F = that id.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Protocol

import gsm0338  # type: ignore[import-untyped]  # registers the "gsm03.38" codec
import pytest

from smsgw.message import AcceptedMessage
from tests.helpers.kannel import KannelClient

pytestmark = pytest.mark.integration

assert gsm0338

TAG_MORE_MESSAGES_TO_SEND = 0x0426
GSM_PART_SEPTETS = 153  # with the 6-octet UDH

SENDER = "12345"
TO_PLAIN, TO_UCS2, TO_LONG = "491710000001", "491710000002", "491710000003"
PLAIN = "Hello from Kannel: @£$¥ è €uro [ok]"
UCS2 = "Привет, мир ✓ 你好 😀"
# Basic-table characters only, so the part count does not depend on escapes.
LONG = ("The quick brown fox jumps over the lazy dog 0123456789. " * 8)[:400]


class Gateway(Protocol):
    """The `gateway` fixture of tests/integration/conftest.py, as this test uses it."""

    host: str
    port: int

    def add_customer(
        self, system_id: str, password: str, *, tps: int = 1000, max_binds: int = 4
    ) -> None: ...

    def read_submits(self, expect: int, timeout: float = 30.0) -> list[AcceptedMessage]: ...


def _describe(records: list[AcceptedMessage]) -> str:
    return "\n".join(
        f"  {m.id} dst={m.destination.addr} dc={m.data_coding} esm=0x{m.esm_class:02X} "
        f"rd=0x{m.registered_delivery:02X} concat={m.concat} udh={m.udh and m.udh.hex()} "
        f"sm={m.short_message[:24].hex()}..."
        for m in records
    )


def test_kannel_plain_ucs2_and_long_messages_are_accepted_and_on_kafka(
    gateway: Gateway, tmp_path_factory: pytest.TempPathFactory
) -> None:
    system_id = f"kannel{uuid.uuid4().hex[:8]}"  # ≤ 15 characters (SMPP C-Octet 16)
    password = "k4nnelpw"  # ≤ 8 characters (SMPP C-Octet 9)
    gateway.add_customer(system_id, password)
    n_long = math.ceil(len(LONG) / GSM_PART_SEPTETS)
    assert n_long == 3
    expected = 1 + 1 + n_long
    workdir: Path = tmp_path_factory.mktemp("kannel")

    with KannelClient(workdir, gateway.host, gateway.port, system_id, password) as kannel:
        kannel.send(TO_PLAIN, PLAIN, sender=SENDER, dlr_mask=31, ref="plain")
        kannel.send(TO_UCS2, UCS2, sender=SENDER, coding=2)
        kannel.send(TO_LONG, LONG, sender=SENDER, dlr_mask=31, ref="long")
        try:
            records = gateway.read_submits(expect=expected, timeout=60.0)
        except Exception as exc:
            raise AssertionError(
                f"gateway submit topic did not get {expected} records: {exc!r}\n"
                f"{kannel.status_text()}\n{kannel.log_tails()}"
            ) from exc
        # dlr type 8 = "SMSC ack": Kannel got submit_sm_resp OK with this message_id.
        acks = kannel.wait_dlrs(2, timeout=30.0, dlr_type=8)
        status = kannel.status_text()

    assert len(records) == expected, _describe(records)
    by_dest: dict[str, list[AcceptedMessage]] = defaultdict(list)
    for m in records:
        by_dest[m.destination.addr].append(m)
    assert sorted(by_dest) == [TO_PLAIN, TO_UCS2, TO_LONG], _describe(records)

    for m in records:
        assert m.customer == system_id
        assert m.source.addr == SENDER
        assert m.esm_class & 0x3C == 0  # a plain submit, not a receipt
    assert len({m.id for m in records}) == expected, "gateway ids must be distinct per part"
    assert all(m.id for m in records)

    # Plain GSM text: data_coding 0, unpacked septets (0x1B escapes for € [ ]).
    [plain] = by_dest[TO_PLAIN]
    assert plain.data_coding == 0
    assert plain.esm_class & 0x40 == 0
    assert plain.udh is None and plain.concat is None
    assert plain.short_message == PLAIN.encode("gsm03.38")
    assert plain.registered_delivery & 0x03 == 1  # dlr-mask 31 asks for a receipt

    # UCS2: data_coding 8, UTF-16BE.
    [ucs2] = by_dest[TO_UCS2]
    assert ucs2.data_coding == 8
    assert ucs2.udh is None and ucs2.concat is None
    assert ucs2.short_message.decode("utf-16-be") == UCS2
    assert ucs2.registered_delivery == 0

    # Long: n parts of one 8-bit-ref concatenation, in any arrival order.
    parts = sorted(by_dest[TO_LONG], key=lambda m: m.concat.seq if m.concat else 0)
    assert len(parts) == n_long, _describe(parts)
    ref = parts[0].concat.ref if parts[0].concat else None
    text = b""
    for i, part in enumerate(parts, start=1):
        c = part.concat
        assert c is not None, _describe(parts)
        assert (c.ref, c.total, c.seq, c.ref_bits) == (ref, n_long, i, 8)
        assert part.data_coding == 0
        assert part.esm_class & 0x40, "UDHI must be set"
        assert part.udh == bytes([5, 0, 3, c.ref, n_long, i])
        assert part.short_message.startswith(part.udh)
        body = part.short_message[len(part.udh) :]
        assert len(body) <= GSM_PART_SEPTETS
        text += body
        # Kannel marks every part but the last with more_messages_to_send = 1.
        more = part.tlvs.get(TAG_MORE_MESSAGES_TO_SEND)
        assert more == (b"\x01" if i < n_long else None), part.tlvs
        # Kannel asks for a receipt on part 1 only.
        assert part.registered_delivery & 0x03 == (1 if i == 1 else 0)
    assert text.decode("gsm03.38") == LONG

    # The id Kannel got in submit_sm_resp is the id on Kafka (receipts match on it).
    ack_ids = {d["ref"]: d["fid"] for d in acks}
    assert ack_ids == {"plain": plain.id, "long": parts[0].id}, (acks, status)
