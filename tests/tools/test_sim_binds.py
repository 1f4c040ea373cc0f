"""Binds (credentials, limits), MO delivery and the fault-injection hooks."""

import asyncio

import pytest

from benchmarks.loadgen import BindFailed, Collector, connect
from smsgw.smpp import BindMode, CommandStatus
from smsgw.smpp.pdu import FieldValue

from .conftest import until

S = CommandStatus


async def test_bad_password_is_rinvpaswd(make_sim):
    sim = await make_sim()
    with pytest.raises(BindFailed) as info:
        await connect("127.0.0.1", sim.port, BindMode.TRX, "smsc", "wrong")
    assert info.value.status == S.ESME_RINVPASWD
    with pytest.raises(BindFailed) as info:
        await connect("127.0.0.1", sim.port, BindMode.TX, "nobody", "pw")
    assert info.value.status == S.ESME_RINVSYSID
    assert sim.stats.bind_failures == 2 and sim.stats.binds == 0


@pytest.mark.parametrize("status", [S.ESME_RALYBND, S.ESME_RBINDFAIL])
async def test_binds_above_max_are_refused(make_sim, status):
    sim = await make_sim(max_binds=1, max_binds_status=status)
    first = await connect("127.0.0.1", sim.port, BindMode.TRX, "smsc", "pw")
    with pytest.raises(BindFailed) as info:
        await connect("127.0.0.1", sim.port, BindMode.TX, "smsc", "pw")
    assert info.value.status == status
    await first.unbind()
    await until(lambda: not sim.bound)
    again = await connect("127.0.0.1", sim.port, BindMode.TX, "smsc", "pw")
    await again.unbind()


@pytest.mark.parametrize(
    ("text", "coding", "body"),
    [
        ("Hi €5 [ok]", 0, "Hi €5 [ok]".encode("gsm03.38")),
        ("Привет", 8, "Привет".encode("utf-16-be")),
    ],
)
async def test_mo_reaches_a_bound_receiver(make_sim, text, coding, body):
    sim = await make_sim()
    tx = await connect("127.0.0.1", sim.port, BindMode.TX, "smsc", "pw")
    collector = Collector()
    rx = await connect("127.0.0.1", sim.port, BindMode.RX, "smsc", "pw", handler=collector)
    sim.send_mo("447700900123", "12345", text)
    [mo] = await collector.wait_delivered(1)
    assert mo.get_int("esm_class") == 0
    assert mo.get_bytes("source_addr") == b"447700900123"
    assert mo.get_bytes("destination_addr") == b"12345"
    assert (mo.get_int("data_coding"), mo.get_bytes("short_message")) == (coding, body)
    await until(lambda: sim.stats.mo_acked == 1)
    await tx.unbind()
    await rx.unbind()


async def test_mo_waits_until_a_receiver_binds(make_sim):
    sim = await make_sim()
    sim.send_mo("447700900123", "12345", "stored")
    assert sim.backlog == 1
    collector = Collector()
    rx = await connect("127.0.0.1", sim.port, BindMode.RX, "smsc", "pw", handler=collector)
    await collector.wait_delivered(1)
    await rx.unbind()


async def test_mo_rate_generates_traffic(make_sim):
    sim = await make_sim(mo_rate=100)
    collector = Collector()
    rx = await connect("127.0.0.1", sim.port, BindMode.TRX, "smsc", "pw", handler=collector)
    await collector.wait_delivered(10)
    await rx.unbind()


async def test_drop_connections_and_paused_responses(make_sim):
    sim = await make_sim(receipt_delay=0)
    loop = asyncio.get_running_loop()
    collector = Collector()
    conn = await connect("127.0.0.1", sim.port, BindMode.TRX, "smsc", "pw", handler=collector)
    sim.pause_responses()
    conn.submit(
        {"source_addr": "1", "destination_addr": "2", "short_message": b"x"}, loop.time(), False
    )
    conn.flush()
    await asyncio.sleep(0.2)
    assert collector.responses == [] and len(conn.inflight) == 1
    sim.resume_responses()
    await until(lambda: len(collector.responses) == 1)
    assert sim.drop_connections() == 1
    async with asyncio.timeout(2):
        await conn.closed
    await until(lambda: not sim.bound)


async def test_transceiver_refused_when_disabled_receipts_and_mo_come_over_the_receiver(
    make_sim,
):
    """A TX+RX-only SMSC: bind_transceiver is refused; the receipt of a message sent on
    the transmitter and an MO arrive on the receiver; unbinds are counted."""
    sim = await make_sim(transceiver=False, receipt_delay=0)
    with pytest.raises(BindFailed) as info:
        await connect("127.0.0.1", sim.port, BindMode.TRX, "smsc", "pw")
    assert info.value.status == S.ESME_RBINDFAIL
    tx_seen, rx_seen = Collector(), Collector()
    tx = await connect("127.0.0.1", sim.port, BindMode.TX, "smsc", "pw", handler=tx_seen)
    rx = await connect("127.0.0.1", sim.port, BindMode.RX, "smsc", "pw", handler=rx_seen)
    fields: dict[str, FieldValue] = {
        "source_addr": "A",
        "destination_addr": "1",
        "short_message": b"x",
        "registered_delivery": 1,
    }
    tx.submit(fields, asyncio.get_running_loop().time(), True)
    tx.flush()
    sim.send_mo("4917000", "1234", "mo")
    delivered = await rx_seen.wait_delivered(2)
    assert sorted(p.get_int("esm_class") for p in delivered) == [0x00, 0x04]
    await until(lambda: len(tx_seen.responses) == 1)
    assert tx_seen.delivered == []
    await tx.unbind()
    await rx.unbind()
    await until(lambda: sim.stats.unbinds == 2)
