"""Receipts: Appendix B text + TLVs, outcome mix, failure-only, the resp race, retries."""

import asyncio
import re

from benchmarks.loadgen import Collector, LoadConfig, connect, run_load
from smsgw.smpp import BindMode, CommandStatus, Role, Session
from smsgw.smpp import events as ev
from smsgw.smpp.pdu import FieldValue

from .conftest import until

APPENDIX_B = re.compile(
    rb"^id:(\w+) sub:001 dlvrd:(\d{3}) submit date:\d{10} done date:\d{10} "
    rb"stat:(\w{7}) err:(\d{3}) text:(.{0,20})$"
)
SUBMIT: dict[str, FieldValue] = {
    "source_addr": "12345",
    "destination_addr": "447700900001",
    "registered_delivery": 1,
    "short_message": b"Hello receipt world, this is longer than 20",
}


async def test_receipt_text_and_tlvs_match_the_submit_resp(make_sim):
    sim = await make_sim(receipt_delay=0, outcomes={"UNDELIV": 1.0})
    collector = Collector()
    conn = await connect("127.0.0.1", sim.port, BindMode.TRX, "smsc", "pw", handler=collector)
    conn.submit(dict(SUBMIT), asyncio.get_running_loop().time(), True)
    conn.flush()
    [receipt] = await collector.wait_delivered(1)
    [(status, message_id)] = collector.responses
    assert status == 0 and message_id == sim.received[0].message_id
    assert receipt.get_int("esm_class") == 0x04
    assert receipt.get_bytes("source_addr") == b"447700900001"
    assert receipt.get_bytes("destination_addr") == b"12345"
    m = APPENDIX_B.match(receipt.get_bytes("short_message"))
    assert m is not None, receipt.get_bytes("short_message")
    assert m.groups() == (
        message_id.encode(),
        b"000",
        b"UNDELIV",
        b"001",
        b"Hello receipt world,",
    )
    assert receipt.tlv(0x001E) == message_id.encode() + b"\0"
    assert receipt.tlv(0x0427) == b"\x05"
    assert receipt.tlv(0x0423) == b"\x03\x00\x01"
    await conn.unbind()


async def test_outcome_mix_follows_the_weights(make_sim):
    sim = await make_sim(receipt_delay=0, outcomes={"DELIVRD": 0.7, "UNDELIV": 0.3})
    result = await run_load(LoadConfig(port=sim.port, count=400, window=20))
    stats = result.receipt_stats
    assert stats.keys() == {"DELIVRD", "UNDELIV"} and sum(stats.values()) == 400
    assert 0.6 < stats["DELIVRD"] / 400 < 0.8
    assert result.receipts_matched == 400


async def test_failure_only_registered_delivery(make_sim):
    sim = await make_sim(receipt_delay=0, outcomes={"DELIVRD": 0.5, "UNDELIV": 0.5})
    result = await run_load(
        LoadConfig(port=sim.port, count=200, window=20, registered_delivery=2, receipt_timeout=0.3)
    )
    assert result.accepted == 200
    assert 0 < result.receipts == sim.stats.receipts_sent < 200
    assert result.receipt_stats == {"UNDELIV": result.receipts}
    assert result.receipts_missing is None  # unknowable for failure-only
    assert result.receipts_matched == result.receipts


async def test_receipt_before_resp_is_first_on_the_wire(make_sim):
    sim = await make_sim(receipt_before_resp=True)
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    session = Session(Role.CLIENT, now=loop.time())
    session.send_bind(BindMode.TRX, "smsc", "pw", loop.time())
    writer.write(session.data_to_send())
    seen: list[object] = []
    while not seen:
        seen += session.feed(await reader.read(4096), loop.time())
    assert isinstance(seen[0], ev.BindResponse) and seen[0].status == 0
    session.send_submit(SUBMIT, loop.time())
    writer.write(session.data_to_send())
    order: list[object] = []
    async with asyncio.timeout(5):
        while len(order) < 2:
            order += session.feed(await reader.read(4096), loop.time())
    assert [type(e) for e in order] == [ev.DeliverReceived, ev.SubmitResponse]
    writer.close()


async def test_loadgen_matches_receipts_that_overtake_their_resp(make_sim):
    sim = await make_sim(receipt_before_resp=True)
    result = await run_load(LoadConfig(port=sim.port, count=200, window=10))
    assert result.receipts_matched == 200
    assert result.receipts_unmatched == result.receipts_duplicate == 0


async def test_receipt_retried_after_an_error_response(make_sim):
    sim = await make_sim(receipt_delay=0, retry_delay=0.05)
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    session = Session(Role.CLIENT, now=loop.time())
    session.send_bind(BindMode.TRX, "smsc", "pw", loop.time())
    writer.write(session.data_to_send())
    [bound] = session.feed(await reader.read(4096), loop.time())
    assert isinstance(bound, ev.BindResponse) and bound.status == 0
    receipts: list[ev.DeliverReceived] = []
    sent = False
    async with asyncio.timeout(5):
        while len(receipts) < 2:
            if not sent:
                session.send_submit(SUBMIT, loop.time())
                sent = True
            writer.write(session.data_to_send())
            for event in session.feed(await reader.read(4096), loop.time()):
                if isinstance(event, ev.DeliverReceived):
                    receipts.append(event)
                    first = len(receipts) == 1
                    status = CommandStatus.ESME_RX_T_APPN if first else CommandStatus.ESME_ROK
                    session.respond_deliver(event.sequence, status)
        writer.write(session.data_to_send())
    assert receipts[0].pdu.get_bytes("short_message") == receipts[1].pdu.get_bytes("short_message")
    await until(lambda: sim.stats.receipts_acked == 1)
    assert sim.stats.deliver_errors == 1 and sim.stats.receipts_sent == 2
    writer.close()


async def test_receipt_of_a_lost_bind_goes_to_another_receiver(make_sim):
    """A receipt whose submitting bind dropped is delivered on a live bind, not into the
    dead socket (where it would wait forever)."""
    sim = await make_sim(receipt_delay=0.3)
    loop = asyncio.get_running_loop()
    first = Collector()
    gone = await connect("127.0.0.1", sim.port, BindMode.TRX, "smsc", "pw", handler=first)
    other = Collector()
    live = await connect("127.0.0.1", sim.port, BindMode.RX, "smsc", "pw", handler=other)
    gone.submit(dict(SUBMIT), loop.time(), True)
    gone.flush()
    await until(lambda: len(first.responses) == 1)
    assert gone.transport is not None
    gone.transport.abort()  # the bind is lost before its receipt is due
    [receipt] = await other.wait_delivered(1)
    assert receipt.tlv(0x001E) == first.responses[0][1].encode() + b"\0"
    await until(lambda: sim.stats.receipts_acked == 1)
    await live.unbind()
