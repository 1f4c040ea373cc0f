"""Provider-session timers: the sans-IO session's deadlines on a fake clock, and the
asyncio shell (SmppClient) honouring each of them when it is due (issue 12 item 2)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from smsgw.pipeline.smpp_client import SmppClient
from smsgw.smpp import events as ev
from smsgw.smpp.codec import decode, encode
from smsgw.smpp.deadline import DeadlineTimer
from smsgw.smpp.events import BindMode
from smsgw.smpp.framing import Framer
from smsgw.smpp.pdu import FieldValue, Pdu
from smsgw.smpp.session import Session
from smsgw.smpp.states import Role, State

T0 = 1000.0
SUBMIT: dict[str, FieldValue] = {
    "source_addr": "Acme",
    "destination_addr": "4917012345",
    "short_message": b"hi",
}


def _sent(s: Session) -> list[Pdu]:
    framer = Framer()
    framer.feed(s.data_to_send())
    out = []
    while (frame := framer.next_frame()) is not None:
        out.append(decode(frame))
    return out


def _bound_client(now: float) -> Session:
    s = Session(Role.CLIENT, now=T0, enquire_link_interval=20, response_timeout=10)
    seq = s.send_bind(BindMode.TRX, "smsc", "pw", T0)
    s.data_to_send()
    s.feed(encode(Pdu("bind_transceiver_resp", seq, 0, {"system_id": "x"})), now)
    return s


def test_client_deadlines_follow_every_state_change() -> None:
    s = Session(Role.CLIENT, now=T0, enquire_link_interval=20, response_timeout=10)
    assert s.next_deadline() == T0 + 120  # open, nothing outstanding: inactivity only
    s.send_bind(BindMode.TRX, "smsc", "pw", T0)
    assert s.next_deadline() == T0 + 10  # the bind's response timeout
    s.data_to_send()
    s = _bound_client(T0 + 1)
    assert s.state is State.BOUND_TRX
    assert s.next_deadline() == T0 + 1 + 20  # first enquire_link: interval after the bind
    assert s.tick(T0 + 20.9) == [] and s.data_to_send() == b""
    assert s.tick(T0 + 21) == []
    [enq] = _sent(s)
    assert enq.command == "enquire_link"
    assert s.next_deadline() == T0 + 21 + 10  # its response timeout
    s.feed(encode(Pdu("enquire_link_resp", enq.sequence)), T0 + 22)
    assert s.next_deadline() == T0 + 42
    seq = s.send_submit(SUBMIT, T0 + 25)
    assert s.next_deadline() == T0 + 35  # the submit's response timeout comes first
    assert s.tick(T0 + 34.9) == []
    assert s.tick(T0 + 35) == [ev.ResponseTimeout(seq, "submit_sm")]
    assert not s.closed and s.next_deadline() == T0 + 42


def test_unanswered_bind_times_out_after_the_response_timeout() -> None:
    s = Session(Role.CLIENT, now=T0, response_timeout=10)
    seq = s.send_bind(BindMode.TX, "smsc", "pw", T0)
    events = s.tick(T0 + 10)
    assert events[0] == ev.ResponseTimeout(seq, "bind_transmitter") and s.closed


# ---------------------------------------------------------------- the asyncio shell
class SkewLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock can be moved forward (timers due by then fire at once)."""

    skew = 0.0

    def time(self) -> float:
        return super().time() + self.skew

    def jump_to(self, when: float) -> None:
        """Move the clock forward to `when` (real time keeps running from there)."""
        self.skew += max(0.0, when - self.time())


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.framer = Framer()
        self.pdus: list[tuple[float, Pdu]] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.framer.feed(bytes(data))
        loop = asyncio.get_running_loop()
        while (frame := self.framer.next_frame()) is not None:
            self.pdus.append((loop.time(), decode(frame)))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def sent(self, command: str) -> list[tuple[float, Pdu]]:
        return [(t, p) for t, p in self.pdus if p.command == command]


def run_on_skew_loop(scenario: Callable[[SkewLoop], Awaitable[None]]) -> None:
    loop = SkewLoop()
    try:
        loop.run_until_complete(scenario(loop))  # pytest-timeout bounds it (loop time is skewed)
    finally:
        loop.close()


async def until(cond: Callable[[], Any], within: float = 10.0) -> None:
    """Real-time wait for a condition the loop's timers make true (a bound, not a
    wait: generous for a loaded machine)."""
    deadline = asyncio.get_running_loop().time() + within
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _bound_shell(
    loop: SkewLoop, events: list[Any]
) -> tuple[SmppClient, FakeTransport, float]:
    """A shell bound as transceiver; returns it, its transport and when the bind_resp came."""
    client = SmppClient(events.append, enquire_link_interval=20.0, response_timeout=10.0)
    transport = FakeTransport()
    client.connection_made(transport)
    bind = loop.create_task(client.bind(BindMode.TRX, "smsc", "pw"))
    await until(lambda: transport.sent("bind_transceiver"))
    [(_, b)] = transport.sent("bind_transceiver")
    bound_at = loop.time()
    client.data_received(encode(Pdu("bind_transceiver_resp", b.sequence, 0, {"system_id": "x"})))
    await bind
    return client, transport, bound_at


def test_shell_sends_the_first_enquire_link_one_interval_after_the_bind() -> None:
    async def scenario(loop: SkewLoop) -> None:
        _client, transport, bound_at = await _bound_shell(loop, [])
        loop.jump_to(bound_at + 18)
        await asyncio.sleep(0.1)
        assert transport.sent("enquire_link") == []  # not before the interval
        loop.jump_to(bound_at + 20)
        await until(lambda: transport.sent("enquire_link"))
        [(at, _)] = transport.sent("enquire_link")
        assert bound_at + 20 <= at < bound_at + 21

    run_on_skew_loop(scenario)


def test_shell_reports_an_unanswered_submit_after_the_response_timeout() -> None:
    async def scenario(loop: SkewLoop) -> None:
        events: list[Any] = []
        client, transport, bound_at = await _bound_shell(loop, events)
        loop.jump_to(bound_at + 5)
        sent_at = loop.time()
        seq = client.submit(dict(SUBMIT), [])
        await until(lambda: transport.sent("submit_sm"))
        loop.jump_to(sent_at + 9)
        await asyncio.sleep(0.1)
        assert events == []  # not before the response timeout
        loop.jump_to(sent_at + 10)
        await until(lambda: ev.ResponseTimeout(seq, "submit_sm") in events)
        assert loop.time() < sent_at + 11
        assert not client.closed.done()  # one message timed out, not the link

    run_on_skew_loop(scenario)


def test_shell_times_out_an_unanswered_bind() -> None:
    async def scenario(loop: SkewLoop) -> None:
        client = SmppClient(lambda e: None, response_timeout=10.0)
        transport = FakeTransport()
        client.connection_made(transport)
        bind = loop.create_task(client.bind(BindMode.TX, "smsc", "pw", timeout=300))
        await until(lambda: transport.sent("bind_transmitter"))
        loop.skew += 10.0
        await until(lambda: transport.closing)  # the session closes on the bind timeout
        client.connection_lost(None)
        with pytest.raises(ConnectionError):
            await bind

    run_on_skew_loop(scenario)


def test_deadline_timer_moves_earlier_never_later() -> None:
    async def scenario(loop: SkewLoop) -> None:
        fired: list[float] = []
        timer = DeadlineTimer(loop, lambda: fired.append(loop.time()))
        now = loop.time()
        timer.follow(now + 100)
        timer.follow(now + 5)
        assert timer.armed_at == now + 5
        timer.follow(now + 50)  # later: the armed timer stays (it fires early, harmlessly)
        assert timer.armed_at == now + 5
        loop.skew += 5
        await until(lambda: fired)
        assert timer.armed_at is None
        timer.follow(None)
        assert timer.armed_at is None

    run_on_skew_loop(scenario)
