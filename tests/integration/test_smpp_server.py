"""The customer-facing SMPP server against real Kafka and PostgreSQL, driven by python-smpplib."""

from __future__ import annotations

import socket
import struct
import time

import pytest
import smpplib.smpp

from smsgw.smpp.status import CommandStatus as S
from tests.helpers import esme
from tests.helpers.gateway import GatewayNode

pytestmark = pytest.mark.integration


def test_submit_is_acknowledged_with_an_id_and_the_record_holds_every_field(
    gateway: GatewayNode,
) -> None:
    gateway.add_customer("acme", "secret1")
    client = esme.bind(gateway.host, gateway.port, "acme", "secret1")
    try:
        resp = esme.submit(
            client,
            source_addr="4915100000001",
            destination_addr="4917600000002",
            short_message="Hello €uro".encode("gsm03.38"),
            esm_class=0x00,
            priority_flag=2,
            protocol_id=0,
            validity_period="000001000000000R",
            registered_delivery=1,
        )
    finally:
        client.disconnect()
    assert resp.command == "submit_sm_resp"
    assert resp.status == 0
    mid = esme.message_id(resp)
    assert mid.isdigit() and len(mid) <= 64
    [rec] = gateway.read_submits(expect=1)
    assert rec.id == mid
    assert rec.customer == "acme"
    assert rec.bind.startswith("test-node/")
    assert (rec.source.addr, rec.source.ton, rec.source.npi) == ("4915100000001", 1, 1)
    assert (rec.destination.addr, rec.destination.ton, rec.destination.npi) == (
        "4917600000002",
        1,
        1,
    )
    assert rec.short_message == "Hello €uro".encode("gsm03.38")
    assert rec.data_coding == 0 and rec.esm_class == 0 and rec.priority == 2
    assert rec.registered_delivery == 1
    assert rec.validity_period == "000001000000000R"
    assert abs(rec.received_at - time.time()) < 60


def test_ucs2_udh_and_sar_parts_keep_their_octets(gateway: GatewayNode) -> None:
    gateway.add_customer("parts", "pw")
    client = esme.bind(gateway.host, gateway.port, "parts", "pw")
    udh = bytes([5, 0, 3, 0x2A, 2, 1])
    body = "Привет 👋".encode("utf-16-be")
    try:
        r1 = esme.submit(client, short_message=udh + body, data_coding=8, esm_class=0x40)
        r2 = esme.submit(
            client,
            short_message=b"part two",
            sar_msg_ref_num=0x1234,
            sar_total_segments=2,
            sar_segment_seqnum=2,
        )
    finally:
        client.disconnect()
    assert (r1.status, r2.status) == (0, 0)
    recs = {r.id: r for r in gateway.read_submits(expect=2)}
    a, b = recs[esme.message_id(r1)], recs[esme.message_id(r2)]
    assert a.short_message == udh + body and a.udh == udh and a.data_coding == 8
    assert a.concat is not None and (a.concat.ref, a.concat.total, a.concat.seq) == (0x2A, 2, 1)
    assert b.concat is not None and (b.concat.ref, b.concat.total, b.concat.seq) == (0x1234, 2, 2)
    assert b.concat.source == "sar"


def test_wrong_password_and_unknown_system_id_are_refused_after_a_delay(
    gateway: GatewayNode,
) -> None:
    gateway.add_customer("acme", "right")
    t0 = time.monotonic()
    assert esme.bind_status(gateway.host, gateway.port, "acme", "wrong") == S.ESME_RBINDFAIL
    assert time.monotonic() - t0 >= 0.2, "bad credentials are answered only after the damping delay"
    assert esme.bind_status(gateway.host, gateway.port, "nobody", "x") == S.ESME_RBINDFAIL
    assert esme.bind_status(gateway.host, gateway.port, "acme", "right") == 0


def test_bind_from_outside_the_allowlist_is_refused(gateway: GatewayNode) -> None:
    gateway.add_customer("walled", "pw", allow_ips=["10.0.0.0/8"])
    assert esme.bind_status(gateway.host, gateway.port, "walled", "pw") == S.ESME_RBINDFAIL
    gateway.update_customer("walled", allow_ips=["127.0.0.0/8"])
    assert esme.bind_status(gateway.host, gateway.port, "walled", "pw") == 0


def test_binds_beyond_max_binds_are_refused(gateway: GatewayNode) -> None:
    gateway.add_customer("two", "pw", max_binds=2)
    clients = [esme.bind(gateway.host, gateway.port, "two", "pw") for _ in range(2)]
    try:
        assert esme.bind_status(gateway.host, gateway.port, "two", "pw") == S.ESME_RBINDFAIL
        clients.pop().disconnect()

        def binds() -> int:
            core = gateway.gateway.core
            return len(list(core.binds.sessions("two"))) if core else 0

        deadline = time.monotonic() + 30  # the gateway sees the connection go first
        while gateway.call(binds) > 1:
            assert time.monotonic() < deadline, "the closed bind is still counted"
            time.sleep(0.05)
        assert esme.bind_status(gateway.host, gateway.port, "two", "pw") == 0
    finally:
        for c in clients:
            c.disconnect()


def test_disabled_customer_cannot_bind(gateway: GatewayNode) -> None:
    gateway.add_customer("off", "pw", enabled=False)
    assert esme.bind_status(gateway.host, gateway.port, "off", "pw") == S.ESME_RBINDFAIL


def test_submits_over_tps_get_throttled_immediately_never_dropped(gateway: GatewayNode) -> None:
    gateway.add_customer("slow", "pw", tps=5)
    client = esme.bind(gateway.host, gateway.port, "slow", "pw")
    try:
        sent = [esme.send(client).sequence for _ in range(30)]
        t0 = time.monotonic()
        statuses = {}
        for _ in sent:
            resp = client.read_pdu()
            statuses[resp.sequence] = resp.status
        elapsed = time.monotonic() - t0
    finally:
        client.disconnect()
    assert set(statuses) == set(sent), "every submit got an answer"
    ok = sum(1 for s in statuses.values() if s == 0)
    throttled = sum(1 for s in statuses.values() if s == S.ESME_RTHROTTLED)
    assert ok + throttled == 30
    assert 5 <= ok <= 7, f"about one second's worth accepted, got {ok}"
    assert elapsed < 2.0, "throttled answers come at once, not after a stall"
    assert len(gateway.read_submits(expect=ok, timeout=30)) == ok
    assert gateway.counters()[("throttled", "slow", "")] == throttled


def test_query_sm_reports_the_accepted_message(gateway: GatewayNode) -> None:
    gateway.add_customer("q", "pw")
    client = esme.bind(gateway.host, gateway.port, "q", "pw")
    try:
        mid = esme.message_id(esme.submit(client, source_addr="4915100000009"))
        client.query_message(
            message_id=mid, source_addr_ton=1, source_addr_npi=1, source_addr="4915100000009"
        )
        resp = client.read_pdu()
        client.query_message(
            message_id="999", source_addr_ton=1, source_addr_npi=1, source_addr="1"
        )
        missing = client.read_pdu()
    finally:
        client.disconnect()
    assert resp.command == "query_sm_resp" and resp.status == 0
    assert int(resp.message_state) == 1  # ENROUTE: accepted, not yet final
    assert missing.status == S.ESME_RQUERYFAIL


def test_invalid_submits_get_their_status(gateway: GatewayNode) -> None:
    gateway.add_customer("bad", "pw")
    client = esme.bind(gateway.host, gateway.port, "bad", "pw")
    try:
        cases = {
            "dest": esme.submit(client, destination_addr="").status,
            "src": esme.submit(client, source_addr="", source_addr_ton=1).status,
            "dcs": esme.submit(client, data_coding=0x0C).status,
            "esm": esme.submit(client, esm_class=0x04).status,
            "both": _submit_with_both_bodies(client),
        }
    finally:
        client.disconnect()
    assert cases == {
        "dest": S.ESME_RINVDSTADR,
        "src": S.ESME_RINVSRCADR,
        "dcs": S.ESME_RINVDCS,
        "esm": S.ESME_RINVESMCLASS,
        "both": S.ESME_RINVMSGLEN,
    }
    assert gateway.read_submits(expect=1, timeout=3) == [], "nothing invalid reaches Kafka"


def _submit_with_both_bodies(client: object) -> int:
    """smpplib refuses to build this one, so append the message_payload TLV by hand."""
    pdu = smpplib.smpp.make_pdu(
        "submit_sm",
        client=client,
        source_addr="1",
        destination_addr="4917600000002",
        short_message=b"x",
    )
    raw = pdu.generate() + struct.pack(">HH", 0x0424, 1) + b"y"
    raw = struct.pack(">I", len(raw)) + raw[4:]
    client._socket.sendall(raw)  # type: ignore[attr-defined]
    resp = client.read_pdu()  # type: ignore[attr-defined]
    assert resp.sequence == pdu.sequence
    return int(resp.status)


def test_receiver_bind_cannot_submit(gateway: GatewayNode) -> None:
    gateway.add_customer("rx", "pw")
    client = esme.bind(gateway.host, gateway.port, "rx", "pw", mode="receiver")
    try:
        # smpplib itself refuses to send this from a receiver: put it on the wire raw.
        pdu = smpplib.smpp.make_pdu(
            "submit_sm",
            client=client,
            source_addr="1",
            destination_addr="4917600000002",
            short_message=b"x",
        )
        client._socket.sendall(pdu.generate())
        assert client.read_pdu().status == S.ESME_RINVBNDSTS
    finally:
        client.disconnect()


def test_submit_before_bind_is_refused(gateway: GatewayNode) -> None:
    client = esme.connect(gateway.host, gateway.port)
    try:
        assert esme.submit_raw(client).status == S.ESME_RINVBNDSTS
    finally:
        client.disconnect()


def test_new_customer_can_bind_without_restart(gateway: GatewayNode) -> None:
    assert esme.bind_status(gateway.host, gateway.port, "late", "pw") == S.ESME_RBINDFAIL
    gateway.add_customer("late", "pw")  # waits for the NOTIFY-driven reload
    assert esme.bind_status(gateway.host, gateway.port, "late", "pw") == 0


def test_garbage_costs_only_its_own_session(gateway: GatewayNode) -> None:
    gateway.add_customer("good", "pw")
    good = esme.bind(gateway.host, gateway.port, "good", "pw")
    try:
        with socket.create_connection((gateway.host, gateway.port), timeout=5) as bad:
            bad.sendall(struct.pack(">IIII", 8, 0, 0, 1))  # command_length < 16
            head = bad.recv(16)
            assert struct.unpack(">IIII", head)[1:3] == (0x80000000, S.ESME_RINVCMDLEN)
            assert bad.recv(16) == b"", "the session is closed after a framing error"
        with socket.create_connection((gateway.host, gateway.port), timeout=5) as odd:
            odd.sendall(struct.pack(">IIII", 16, 0x00000777, 0, 9))  # unknown command id
            assert struct.unpack(">IIII", odd.recv(16))[1:] == (0x80000000, S.ESME_RINVCMDID, 9)
        assert esme.submit(good).status == 0, "other sessions keep working"
    finally:
        good.disconnect()


def test_data_sm_and_submit_multi_are_accepted(gateway: GatewayNode) -> None:
    gateway.add_customer("multi", "pw")
    client = esme.bind(gateway.host, gateway.port, "multi", "pw")
    try:
        data_sm = smpplib.smpp.make_pdu(
            "data_sm",
            client=client,
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="4915100000001",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="4917600000003",
            esm_class=0,
            registered_delivery=0,
            data_coding=0,
            message_payload=b"via data_sm",
        )
        client.send_pdu(data_sm)
        resp = client.read_pdu()
    finally:
        client.disconnect()
    assert resp.command == "data_sm_resp" and resp.status == 0
    [rec] = gateway.read_submits(expect=1)
    assert rec.command == "data_sm" and rec.message_payload == b"via data_sm"


def test_submit_multi_gives_one_record_per_destination(gateway: GatewayNode) -> None:
    """smpplib has no submit_multi, so the PDU is built with the gateway's own codec; the
    answer is parsed from the raw bytes."""
    from smsgw.smpp import codec
    from smsgw.smpp.pdu import DestAddress, Pdu

    gateway.add_customer("multi2", "pw")
    client = esme.bind(gateway.host, gateway.port, "multi2", "pw")
    dests = (DestAddress(b"4917600000011", 1, 1), DestAddress(b"4917600000012", 1, 1))
    pdu = Pdu(
        "submit_multi",
        77,
        0,
        {
            "service_type": "",
            "source_addr_ton": 1,
            "source_addr_npi": 1,
            "source_addr": "4915100000001",
            "number_of_dests": 2,
            "dest_addresses": dests,
            "esm_class": 0,
            "protocol_id": 0,
            "priority_flag": 0,
            "schedule_delivery_time": "",
            "validity_period": "",
            "registered_delivery": 1,
            "replace_if_present_flag": 0,
            "data_coding": 0,
            "sm_default_msg_id": 0,
            "short_message": b"to both",
        },
    )
    try:
        client._socket.sendall(codec.encode(pdu))
        head = client._recv_exact(16)
        length, cid, status, seq = struct.unpack(">IIII", head)
        resp = codec.decode(head + client._recv_exact(length - 16))
    finally:
        client.disconnect()
    assert (cid, status, seq) == (0x80000021, 0, 77)
    assert resp.unsuccess() == ()
    recs = gateway.read_submits(expect=2)
    assert {r.destination.addr for r in recs} == {"4917600000011", "4917600000012"}
    assert {r.id for r in recs} == {resp.get_str("message_id")}, "one id, as SMPP returns one"


def test_submit_multi_over_the_tps_is_accepted_and_paid_for_by_the_next_seconds(
    gateway: GatewayNode,
) -> None:
    """Was: more destinations than the customer's TPS answered ESME_RTHROTTLED forever.

    Now the whole bucket and the next seconds of the rate carry it: accepted at once,
    then every submit is throttled until the excess is paid (the rate stays exact)."""
    from smsgw.smpp import codec
    from smsgw.smpp.pdu import DestAddress, FieldValue, Pdu

    gateway.add_customer("wide", "pw", tps=2)
    client = esme.bind(gateway.host, gateway.port, "wide", "pw")
    dests = tuple(DestAddress(f"49176000001{i:02d}".encode(), 1, 1) for i in range(6))
    fields: dict[str, FieldValue] = {
        "service_type": "",
        "source_addr_ton": 1,
        "source_addr_npi": 1,
        "source_addr": "4915100000001",
        "number_of_dests": len(dests),
        "dest_addresses": dests,
        "esm_class": 0,
        "protocol_id": 0,
        "priority_flag": 0,
        "schedule_delivery_time": "",
        "validity_period": "",
        "registered_delivery": 0,
        "replace_if_present_flag": 0,
        "data_coding": 0,
        "sm_default_msg_id": 0,
        "short_message": b"to six",
    }
    try:
        client._socket.sendall(codec.encode(Pdu("submit_multi", 90, 0, fields)))
        head = client._recv_exact(16)
        _length, cid, status, seq = struct.unpack(">IIII", head)
        client._recv_exact(_length - 16)
        accepted_at = time.monotonic()
        assert (cid, status, seq) == (0x80000021, 0, 90)
        # 4 destinations over the bucket of 2, at 2/s: about 2 s of throttled answers.
        first_ok = None
        statuses = []
        while time.monotonic() < accepted_at + 15:
            st = int(esme.submit(client).status)
            statuses.append(st)
            if st == 0:
                first_ok = time.monotonic() - accepted_at
                break
            assert st == S.ESME_RTHROTTLED
        assert first_ok is not None, f"never accepted again: {statuses[-3:]}"
        assert 1.7 <= first_ok < 6, f"the next submit came after {first_ok:.2f} s"
    finally:
        client.disconnect()
    recs = gateway.read_submits(expect=7)
    assert len({r.destination.addr for r in recs if r.command == "submit_multi"}) == 6
