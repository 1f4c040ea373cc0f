"""Session state machine. Peer PDUs are built with smpplib (not our codec)."""

import struct
from collections.abc import Callable
from typing import Any

import pytest
import smpplib.command_codes  # type: ignore[import-untyped]
import smpplib.smpp  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw.smpp import events as ev
from smsgw.smpp.events import BindMode
from smsgw.smpp.pdu import NO_RESPONSE, FieldValue
from smsgw.smpp.session import LocalProtocolError, Session, WindowFull
from smsgw.smpp.states import ACCEPT, IGNORE, INBOUND, Role, State
from smsgw.smpp.status import CommandStatus as S
from tests.helpers.depth import examples

T0 = 1000.0


def raw(command: str, seq: int, status: int = 0, **fields: Any) -> bytes:
    pdu = smpplib.smpp.make_pdu(command, client=None, sequence=seq, **fields)
    pdu.sequence = seq
    pdu.status = status
    frame: bytes = pdu.generate()
    return frame


def header(command_id: int, seq: int, body: bytes = b"", status: int = 0) -> bytes:
    return struct.pack(">LLLL", 16 + len(body), command_id, status, seq) + body


def cstr(s: str) -> bytes:
    return s.encode() + b"\0"


# Commands smpplib has no class for, written out by hand.
HAND_BUILT: dict[str, Callable[[int], bytes]] = {
    "submit_multi": lambda seq: header(
        0x21,
        seq,
        cstr("")
        + b"\x01\x01"
        + cstr("12345")
        + b"\x01"
        + b"\x01\x01\x01"
        + cstr("4917012345")
        + b"\x00\x00\x00"
        + cstr("")
        + cstr("")
        + b"\x00\x00\x00\x00"
        + b"\x02hi",
    ),
    "cancel_sm": lambda seq: header(
        0x08, seq, cstr("") + cstr("abc") + b"\x01\x01" + cstr("1") + b"\x01\x01" + cstr("2")
    ),
    "replace_sm": lambda seq: header(
        0x07, seq, cstr("abc") + b"\x01\x01" + cstr("1") + cstr("") + cstr("") + b"\x00\x00\x00"
    ),
    "outbind": lambda seq: header(0x0B, seq, cstr("smsc") + cstr("pw")),
}

REQUEST_FIELDS: dict[str, dict[str, Any]] = {
    "bind_transmitter": {"system_id": "acme", "password": "secret"},
    "bind_receiver": {"system_id": "acme", "password": "secret"},
    "bind_transceiver": {"system_id": "acme", "password": "secret"},
    "submit_sm": {"source_addr": "Acme", "destination_addr": "4917012345", "short_message": b"hi"},
    "deliver_sm": {"source_addr": "4917012345", "destination_addr": "Acme", "short_message": b"x"},
    "data_sm": {"source_addr": "Acme", "destination_addr": "4917012345"},
    "query_sm": {"message_id": "abc", "source_addr": "Acme"},
    "alert_notification": {"source_addr": "1", "esme_addr": "2"},
}


def request(command: str, seq: int) -> bytes:
    if command in HAND_BUILT:
        return HAND_BUILT[command](seq)
    return raw(command, seq, **REQUEST_FIELDS.get(command, {}))


def parse_out(data: bytes) -> list[tuple[str, int, int, bytes]]:
    """[(command, status, sequence, body)] for each PDU in `data`."""
    out = []
    while data:
        length, cid, status, seq = struct.unpack(">LLLL", data[:16])
        out.append((smpplib.command_codes.get_command_name(cid), status, seq, data[16:length]))
        data = data[length:]
    return out


def new(role: Role = Role.SERVER, **kw: Any) -> Session:
    return Session(role, now=T0, **kw)


def bound_server(mode: BindMode = BindMode.TRX, **kw: Any) -> Session:
    s = new(**kw)
    events = s.feed(raw(mode.value, 1, system_id="acme", password="secret"), T0)
    assert isinstance(events[0], ev.BindRequested)
    s.accept_bind("smsgw")
    s.data_to_send()
    return s


def bound_client(mode: BindMode = BindMode.TRX, **kw: Any) -> Session:
    c = new(Role.CLIENT, **kw)
    seq = c.send_bind(mode, "acme", "secret", T0)
    c.data_to_send()
    c.feed(raw(mode.value + "_resp", seq, system_id="smsc"), T0)
    assert c.state.name.startswith("BOUND")
    return c


def session_in(role: Role, state: State) -> Session:
    if state is State.OPEN:
        return new(role)
    if state is State.BINDING:
        if role is Role.SERVER:
            s = new(role)
            s.feed(request("bind_transceiver", 1), T0)
        else:
            s = new(role)
            s.send_bind(BindMode.TRX, "a", "b", T0)
        s.data_to_send()
        return s
    if state is State.UNBINDING:
        s = session_in(role, State.BOUND_TRX)
        s.send_unbind(T0)
        s.data_to_send()
        return s
    mode = {State.BOUND_TX: BindMode.TX, State.BOUND_RX: BindMode.RX, State.BOUND_TRX: BindMode.TRX}
    return bound_server(mode[state]) if role is Role.SERVER else bound_client(mode[state])


# ---------------------------------------------------------------- bind flow
@pytest.mark.parametrize("mode", list(BindMode))
def test_bind_accept(mode: BindMode) -> None:
    s = new()
    pdu = smpplib.smpp.make_pdu(
        mode.value,
        client=None,
        sequence=7,
        system_id="acme",
        password="secret",
        system_type="kannel",
        addr_ton=1,
        addr_npi=1,
        address_range="49*",
    )
    pdu.sequence = 7
    [event] = s.feed(pdu.generate(), T0)
    assert event == ev.BindRequested(7, mode, "acme", "secret", "kannel", 0x34, 1, 1, "49*")
    assert s.state is State.BINDING
    assert s.data_to_send() == b""
    s.accept_bind("smsgw")
    [(command, status, seq, body)] = parse_out(s.data_to_send())
    assert (command, status, seq) == (mode.value + "_resp", 0, 7)
    assert body == b"smsgw\0" + b"\x02\x10\x00\x01\x34"  # system_id + sc_interface_version
    assert s.state.name == "BOUND_" + mode.name
    assert s.bind_mode is mode


def test_bind_reject_has_no_body_and_allows_retry() -> None:
    s = new()
    s.feed(raw("bind_transmitter", 3, system_id="acme", password="bad"), T0)
    s.reject_bind(S.ESME_RINVPASWD)
    assert parse_out(s.data_to_send()) == [("bind_transmitter_resp", 0x0E, 3, b"")]
    assert s.state is State.OPEN
    [event] = s.feed(raw("bind_transmitter", 4, system_id="acme", password="good"), T0)
    assert isinstance(event, ev.BindRequested)


def test_accept_without_pending_bind_is_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        new().accept_bind("x")
    with pytest.raises(LocalProtocolError):
        bound_server().reject_bind(S.ESME_RBINDFAIL)


@pytest.mark.parametrize("mode", list(BindMode))
def test_second_bind_while_bound_is_ralybnd(mode: BindMode) -> None:
    s = bound_server(mode)
    events = s.feed(raw("bind_transceiver", 9, system_id="a", password="b"), T0)
    assert events == [ev.RequestRefused(9, "bind_transceiver", S.ESME_RALYBND)]
    assert parse_out(s.data_to_send()) == [("bind_transceiver_resp", 0x05, 9, b"")]
    assert s.state.name == "BOUND_" + mode.name


def test_submit_before_bind_is_rinvbndsts() -> None:
    s = new()
    events = s.feed(request("submit_sm", 5), T0)
    assert events == [ev.RequestRefused(5, "submit_sm", S.ESME_RINVBNDSTS)]
    assert parse_out(s.data_to_send()) == [("submit_sm_resp", 0x04, 5, b"")]


@pytest.mark.parametrize("command", ["submit_sm", "data_sm", "submit_multi"])
def test_submit_on_receiver_bind_is_rinvbndsts(command: str) -> None:
    s = bound_server(BindMode.RX)
    s.feed(request(command, 5), T0)
    assert parse_out(s.data_to_send()) == [(command + "_resp", 0x04, 5, b"")]


def test_deliver_sm_from_customer_is_rinvbndsts() -> None:
    s = bound_server()
    s.feed(request("deliver_sm", 5), T0)
    assert parse_out(s.data_to_send()) == [("deliver_sm_resp", 0x04, 5, b"")]


# ---------------------------------------------------------------- the whole table
TABLE_CASES = [
    (role, command, state)
    for role in Role
    for command in sorted(INBOUND[role])
    for state in State
    if state is not State.CLOSED
    and not (role is Role.SERVER and state is State.BINDING)  # paused: see test below
]

ACCEPT_EVENTS = {
    "bind_transmitter": ev.BindRequested,
    "bind_receiver": ev.BindRequested,
    "bind_transceiver": ev.BindRequested,
    "submit_sm": ev.SubmitReceived,
    "data_sm": ev.SubmitReceived,
    "submit_multi": ev.SubmitReceived,
    "query_sm": ev.QueryReceived,
    "unbind": ev.UnbindRequested,
    "outbind": ev.OutbindReceived,
}


@pytest.mark.parametrize(("role", "command", "state"), TABLE_CASES)
def test_every_table_entry(role: Role, command: str, state: State) -> None:
    s = session_in(role, state)
    expected = INBOUND[role][command].get(state, S.ESME_RINVBNDSTS)
    events = s.feed(request(command, 77), T0)
    out = parse_out(s.data_to_send())
    if expected is IGNORE:
        assert events == [] and out == []
    elif expected is ACCEPT:
        if command == "enquire_link":
            assert events == [] and out == [("enquire_link_resp", 0, 77, b"")]
        elif role is Role.CLIENT and command in ("deliver_sm", "data_sm"):
            assert [type(e) for e in events] == [ev.DeliverReceived]
        else:
            assert isinstance(events[0], ACCEPT_EVENTS[command])
    else:
        response = "generic_nack" if command in NO_RESPONSE else command + "_resp"
        assert events == [ev.RequestRefused(77, command, expected)]
        assert out == [(response, int(expected), 77, b"")]
        assert s.state is state


# ---------------------------------------------------------------- submits
def test_submit_received_and_responded() -> None:
    s = bound_server(BindMode.TX)
    [event] = s.feed(request("submit_sm", 11), T0)
    assert isinstance(event, ev.SubmitReceived)
    assert (event.sequence, event.command) == (11, "submit_sm")
    assert event.pdu.get_bytes("short_message") == b"hi"
    s.respond_submit(11, S.ESME_ROK, "gw-1")
    assert parse_out(s.data_to_send()) == [("submit_sm_resp", 0, 11, b"gw-1\0")]


def test_error_response_has_no_body() -> None:
    s = bound_server()
    s.feed(request("data_sm", 12), T0)
    s.respond_submit(12, S.ESME_RTHROTTLED, "ignored")
    assert parse_out(s.data_to_send()) == [("data_sm_resp", 0x58, 12, b"")]


def test_submit_multi_response_with_unsuccess() -> None:
    from smsgw.smpp.pdu import UnsuccessSme

    s = bound_server()
    [event] = s.feed(request("submit_multi", 13), T0)
    assert isinstance(event, ev.SubmitReceived) and event.command == "submit_multi"
    s.respond_submit(13, S.ESME_ROK, "m1", unsuccess=[UnsuccessSme(b"49", 1, 1, 0x0B)])
    [(command, status, seq, body)] = parse_out(s.data_to_send())
    assert (command, status, seq) == ("submit_multi_resp", 0, 13)
    assert body == b"m1\0" + b"\x01" + b"\x01\x01" + b"49\0" + b"\x00\x00\x00\x0b"


def test_respond_after_close_is_noop() -> None:
    s = bound_server()
    s.feed(request("submit_sm", 14) + raw("unbind", 15), T0)
    s.data_to_send()
    s.respond_submit(14, S.ESME_ROK, "x")
    assert s.data_to_send() == b""


def test_query_sm() -> None:
    s = bound_server()
    [event] = s.feed(request("query_sm", 21), T0)
    assert event == ev.QueryReceived(21, "abc", "Acme", 0, 0)
    s.respond_query(21, message_id="abc", message_state=2)
    [(command, status, seq, body)] = parse_out(s.data_to_send())
    assert (command, status, seq) == ("query_sm_resp", 0, 21)
    assert body == b"abc\0\0\x02\x00"


def test_cancel_and_replace_are_refused_as_unsupported() -> None:
    s = bound_server()
    s.feed(request("cancel_sm", 1) + request("replace_sm", 2), T0)
    assert parse_out(s.data_to_send()) == [
        ("cancel_sm_resp", 0x11, 1, b""),
        ("replace_sm_resp", 0x13, 2, b""),
    ]


# ---------------------------------------------------------------- malformed input
def test_unknown_command_id_gets_generic_nack() -> None:
    s = bound_server()
    [event] = s.feed(header(0x00000099, 5), T0)
    assert isinstance(event, ev.ProtocolError)
    assert event.status == S.ESME_RINVCMDID and event.sequence == 5 and not event.close
    assert parse_out(s.data_to_send()) == [("generic_nack", 0x03, 5, b"")]
    assert not s.closed


def test_command_length_below_16_nacks_and_closes() -> None:
    s = bound_server()
    events = s.feed(struct.pack(">LLLL", 8, 4, 0, 6), T0)
    assert isinstance(events[0], ev.ProtocolError)
    assert events[0] == ev.ProtocolError(S.ESME_RINVCMDLEN, 6, True, events[0].detail)
    assert isinstance(events[1], ev.ConnectionShouldClose)
    assert parse_out(s.data_to_send()) == [("generic_nack", 0x02, 6, b"")]
    assert s.closed
    assert s.feed(request("submit_sm", 7), T0) == []


def test_command_length_above_max_closes() -> None:
    s = bound_server(max_pdu_size=1000)
    events = s.feed(struct.pack(">LLLL", 1001, 4, 0, 6), T0)
    assert isinstance(events[0], ev.ProtocolError) and events[0].close
    assert isinstance(events[1], ev.ConnectionShouldClose)
    assert s.closed


def test_truncated_body_is_generic_nack_rinvcmdlen() -> None:
    s = bound_server()
    body = cstr("") + b"\x01\x01" + b"1234"  # source_addr without NUL, then nothing
    [event] = s.feed(header(0x04, 8, body), T0)
    assert isinstance(event, ev.ProtocolError)
    assert event.status == S.ESME_RINVCMDLEN and not event.close
    assert parse_out(s.data_to_send()) == [("generic_nack", 0x02, 8, b"")]


def test_broken_tlv_stream_answers_submit_sm_resp() -> None:
    s = bound_server()
    frame = request("submit_sm", 9) + b"\x04\x24\x00"
    frame = struct.pack(">L", len(frame)) + frame[4:]
    [event] = s.feed(frame, T0)
    assert isinstance(event, ev.ProtocolError) and event.status == S.ESME_RINVOPTPARSTREAM
    assert parse_out(s.data_to_send()) == [("submit_sm_resp", 0xC0, 9, b"")]


def test_body_on_enquire_link_is_rinvcmdlen() -> None:
    s = bound_server()
    s.feed(header(0x15, 4, b"\x00"), T0)
    assert parse_out(s.data_to_send()) == [("generic_nack", 0x02, 4, b"")]


# ---------------------------------------------------------------- enquire_link / timers
def test_enquire_link_auto_response_before_and_after_bind() -> None:
    for s in (new(), bound_server()):
        assert s.feed(raw("enquire_link", 42), T0) == []
        assert parse_out(s.data_to_send()) == [("enquire_link_resp", 0, 42, b"")]


def test_tick_sends_enquire_link_after_interval_and_handles_response() -> None:
    s = bound_server(enquire_link_interval=30, inactivity_timeout=120)
    assert s.tick(T0 + 29) == [] and s.data_to_send() == b""
    assert s.next_deadline() == T0 + 30
    assert s.tick(T0 + 30) == []
    [(command, _status, seq, _body)] = parse_out(s.data_to_send())
    assert command == "enquire_link"
    assert s.tick(T0 + 31) == [] and s.data_to_send() == b""  # only one outstanding
    assert s.feed(raw("enquire_link_resp", seq), T0 + 32) == [
        ev.EnquireLinkResponse(seq, S.ESME_ROK)
    ]
    assert s.pending_requests() == {}
    assert s.next_deadline() == T0 + 62


def test_enquire_link_response_timeout_closes() -> None:
    s = bound_server(enquire_link_interval=30, response_timeout=10)
    s.tick(T0 + 30)
    seq = parse_out(s.data_to_send())[0][2]
    events = s.tick(T0 + 40)
    assert events[0] == ev.ResponseTimeout(seq, "enquire_link")
    assert isinstance(events[1], ev.ConnectionShouldClose)
    assert s.closed and s.tick(T0 + 50) == [] and s.next_deadline() is None


def test_inactivity_closes_even_before_bind() -> None:
    s = new(inactivity_timeout=120)
    assert s.tick(T0 + 119) == []
    assert s.tick(T0 + 120) == [ev.ConnectionShouldClose("inactivity")]
    assert s.closed


def test_traffic_resets_timers() -> None:
    s = bound_server(enquire_link_interval=30, inactivity_timeout=120)
    s.feed(raw("enquire_link", 1), T0 + 25)
    s.data_to_send()
    assert s.tick(T0 + 50) == [] and s.data_to_send() == b""


# ---------------------------------------------------------------- unbind
def test_peer_unbind() -> None:
    s = bound_server()
    events = s.feed(raw("unbind", 31), T0)
    assert events == [ev.UnbindRequested(31), ev.ConnectionShouldClose("peer unbound")]
    assert parse_out(s.data_to_send()) == [("unbind_resp", 0, 31, b"")]
    assert s.closed


def test_unbind_before_bind_is_refused() -> None:
    s = new()
    s.feed(raw("unbind", 3), T0)
    assert parse_out(s.data_to_send()) == [("unbind_resp", 0x04, 3, b"")]


def test_our_unbind() -> None:
    s = bound_server()
    seq = s.send_unbind(T0)
    assert parse_out(s.data_to_send()) == [("unbind", 0, seq, b"")]
    assert s.state is State.UNBINDING
    s.feed(request("submit_sm", 4), T0)  # refused while unbinding
    assert parse_out(s.data_to_send()) == [("submit_sm_resp", 0x04, 4, b"")]
    events = s.feed(raw("unbind_resp", seq), T0)
    assert events == [ev.UnbindResponse(seq, S.ESME_ROK), ev.ConnectionShouldClose("unbound")]


# ---------------------------------------------------------------- deliver_sm, window, sequences
DLR: dict[str, FieldValue] = {
    "source_addr": "4917012345",
    "destination_addr": "Acme",
    "esm_class": 4,
    "short_message": b"id:1",
}


def test_deliver_and_response() -> None:
    s = bound_server()
    seq = s.send_deliver(DLR, T0, tlvs=[(0x001E, b"1\0")])
    [(command, _status, got_seq, body)] = parse_out(s.data_to_send())
    assert (command, got_seq) == ("deliver_sm", seq)
    assert body.endswith(b"id:1\x00\x1e\x00\x021\x00")
    assert s.outstanding == 1
    events = s.feed(raw("deliver_sm_resp", seq), T0)
    assert events == [ev.DeliverResponse(seq, "deliver_sm", S.ESME_ROK, "")]
    assert s.outstanding == 0


def test_deliver_not_allowed_on_transmitter_bind() -> None:
    with pytest.raises(LocalProtocolError):
        bound_server(BindMode.TX).send_deliver(DLR, T0)
    with pytest.raises(LocalProtocolError):
        new().send_deliver(DLR, T0)


def test_window_full_and_freed_by_response() -> None:
    s = bound_server(window=3)
    seqs = [s.send_deliver(DLR, T0) for _ in range(3)]
    with pytest.raises(WindowFull):
        s.send_deliver(DLR, T0)
    assert s.outstanding == 3
    s.send_enquire_link(T0)  # not windowed
    s.feed(raw("deliver_sm_resp", seqs[1], status=0x58), T0)
    assert s.outstanding == 2
    s.send_deliver(DLR, T0)
    with pytest.raises(WindowFull):
        s.send_deliver(DLR, T0)


def test_generic_nack_answers_a_pending_deliver() -> None:
    s = bound_server()
    seq = s.send_deliver(DLR, T0)
    events = s.feed(header(0x80000000, seq, status=0x03), T0)
    assert events == [ev.DeliverResponse(seq, "deliver_sm", S.ESME_RINVCMDID, "", True)]
    assert s.outstanding == 0


def test_deliver_response_timeout_frees_window_without_closing() -> None:
    s = bound_server(window=1, response_timeout=10, enquire_link_interval=1000)
    seq = s.send_deliver(DLR, T0)
    s.feed(raw("enquire_link", 1), T0 + 5)
    assert s.tick(T0 + 10) == [ev.ResponseTimeout(seq, "deliver_sm")]
    assert not s.closed and s.outstanding == 0
    assert s.feed(raw("deliver_sm_resp", seq), T0 + 11) == [
        ev.UnexpectedResponse(seq, "deliver_sm_resp", S.ESME_ROK)
    ]


def test_unsolicited_generic_nack_is_reported_not_answered() -> None:
    s = bound_server()
    [event] = s.feed(header(0x80000000, 99, status=0x02), T0)
    assert isinstance(event, ev.ProtocolError) and not event.close
    assert s.data_to_send() == b""


def test_sequence_wraps_to_one() -> None:
    s = bound_server(initial_sequence=0x7FFFFFFE)
    assert s.send_deliver(DLR, T0) == 0x7FFFFFFE
    assert s.send_deliver(DLR, T0) == 0x7FFFFFFF
    assert s.send_deliver(DLR, T0) == 1
    assert s.send_enquire_link(T0) == 2


# ---------------------------------------------------------------- streams
def _stream() -> bytes:
    return (
        raw("bind_transceiver", 1, system_id="acme", password="secret")
        + raw("enquire_link", 2)
        + request("submit_sm", 3)
        + header(0x99, 4)
        + request("query_sm", 5)
        + raw("unbind", 6)
    )


def _run(chunks: list[bytes]) -> tuple[list[ev.Event], bytes]:
    s = new()
    events, out = [], b""
    for chunk in chunks:
        batch = s.feed(chunk, T0)
        while batch:
            events += batch
            if isinstance(batch[-1], ev.BindRequested):
                s.accept_bind("gw")
                batch = s.feed(b"", T0)  # resume what was pipelined behind the bind
            else:
                batch = []
        out += s.data_to_send()
    return events, out


def test_several_pdus_in_one_feed() -> None:
    events, out = _run([_stream()])
    # PDUs pipelined behind the bind wait (paused) until the bind is answered
    assert [type(e) for e in events] == [
        ev.BindRequested,
        ev.SubmitReceived,
        ev.ProtocolError,
        ev.QueryReceived,
        ev.UnbindRequested,
        ev.ConnectionShouldClose,
    ]
    assert [c for c, *_ in parse_out(out)] == [
        "bind_transceiver_resp",
        "enquire_link_resp",
        "generic_nack",
        "unbind_resp",
    ]


def test_paused_while_bind_is_authenticated() -> None:
    s = new()
    events = s.feed(request("bind_transmitter", 1) + request("submit_sm", 2), T0)
    assert [type(e) for e in events] == [ev.BindRequested]
    assert s.paused and s.data_to_send() == b""
    s.reject_bind(S.ESME_RBINDFAIL)
    assert s.feed(b"", T0) == [ev.RequestRefused(2, "submit_sm", S.ESME_RINVBNDSTS)]


def test_one_byte_at_a_time_gives_the_same_events() -> None:
    stream = _stream()
    whole = _run([stream])
    bytewise = _run([stream[i : i + 1] for i in range(len(stream))])
    assert bytewise == whole
    assert _run([stream[:20], stream[20:77], stream[77:]]) == whole


def test_fragmented_equals_whole_when_bound() -> None:
    stream = request("submit_sm", 3) + raw("enquire_link", 4) + request("submit_sm", 5)
    a, b = bound_server(), bound_server()
    whole = a.feed(stream, T0)
    pieces = [e for i in range(len(stream)) for e in b.feed(stream[i : i + 1], T0)]
    assert whole == pieces
    assert a.data_to_send() == b.data_to_send()


# ---------------------------------------------------------------- client role
def test_client_bind_submit_and_deliver() -> None:
    c = new(Role.CLIENT)
    seq = c.send_bind(BindMode.TRX, "acme", "secret", T0, system_type="")
    [(command, _st, got, _b)] = parse_out(c.data_to_send())
    assert (command, got) == ("bind_transceiver", seq)
    assert c.state is State.BINDING
    [event] = c.feed(raw("bind_transceiver_resp", seq, system_id="smsc"), T0)
    assert event == ev.BindResponse(seq, S.ESME_ROK, "smsc")
    assert c.state.name == "BOUND_TRX"
    sub = c.send_submit(
        {"source_addr": "Acme", "destination_addr": "49", "short_message": b"x"}, T0
    )
    c.data_to_send()
    [event] = c.feed(raw("submit_sm_resp", sub, message_id="p-1"), T0)
    assert isinstance(event, ev.SubmitResponse) and event.message_id == "p-1"
    [event] = c.feed(request("deliver_sm", 500), T0)
    assert isinstance(event, ev.DeliverReceived)
    c.respond_deliver(500)
    assert parse_out(c.data_to_send()) == [("deliver_sm_resp", 0, 500, b"\0")]


def test_client_bind_rejected_goes_back_to_open() -> None:
    c = new(Role.CLIENT)
    seq = c.send_bind(BindMode.TX, "acme", "bad", T0)
    [event] = c.feed(header(0x80000002, seq, status=0x0E), T0)
    assert isinstance(event, ev.BindResponse) and event.status == S.ESME_RINVPASWD
    assert c.state.name == "OPEN"


def test_client_and_server_talk_to_each_other() -> None:
    server, client = new(), new(Role.CLIENT)
    client.send_bind(BindMode.TRX, "acme", "pw", T0)
    [bind] = server.feed(client.data_to_send(), T0)
    assert isinstance(bind, ev.BindRequested)
    assert bind.system_id == "acme" and bind.password == "pw"
    server.accept_bind("gw")
    [resp] = client.feed(server.data_to_send(), T0)
    assert isinstance(resp, ev.BindResponse)
    assert resp.status == S.ESME_ROK and resp.system_id == "gw"
    seq = client.send_submit(
        {"source_addr": "Acme", "destination_addr": "4917012345", "short_message": b"hey"},
        T0,
        tlvs=[(0x0426, b"\x01")],
    )
    [sub] = server.feed(client.data_to_send(), T0)
    assert isinstance(sub, ev.SubmitReceived)
    assert sub.pdu.get_bytes("short_message") == b"hey" and sub.pdu.tlv(0x0426) == b"\x01"
    server.respond_submit(sub.sequence, S.ESME_ROK, "gw-42")
    [ack] = client.feed(server.data_to_send(), T0)
    assert isinstance(ack, ev.SubmitResponse)
    assert (ack.sequence, ack.message_id) == (seq, "gw-42")
    dseq = server.send_deliver(DLR, T0)
    [dlr] = client.feed(server.data_to_send(), T0)
    assert isinstance(dlr, ev.DeliverReceived)
    client.respond_deliver(dlr.sequence)
    assert server.feed(client.data_to_send(), T0) == [
        ev.DeliverResponse(dseq, "deliver_sm", S.ESME_ROK, "")
    ]
    useq = client.send_unbind(T0)
    events = server.feed(client.data_to_send(), T0)
    assert isinstance(events[0], ev.UnbindRequested)
    assert client.feed(server.data_to_send(), T0)[0] == ev.UnbindResponse(useq, S.ESME_ROK)
    assert client.closed and server.closed


# ---------------------------------------------------------------- robustness properties
def _assert_no_internal_errors(events: list[ev.Event]) -> None:
    for event in events:
        if isinstance(event, ev.ProtocolError):
            assert not event.detail.startswith("internal"), event.detail


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(st.binary(max_size=80), max_size=8), bound=st.booleans())
def test_random_bytes_never_raise(chunks: list[bytes], bound: bool) -> None:
    s = bound_server() if bound else new()
    for i, chunk in enumerate(chunks):
        _assert_no_internal_errors(s.feed(chunk, T0 + i))
        s.data_to_send()
        s.tick(T0 + i)


VALID = [
    request("submit_sm", 3),
    request("submit_multi", 4),
    request("data_sm", 5),
    request("query_sm", 6),
    raw("submit_sm", 7, source_addr="a", destination_addr="b", message_payload=b"x" * 20),
    raw("deliver_sm_resp", 8),
    raw("enquire_link", 9),
]


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(0, len(VALID) - 1),
    edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 200),
    fix_length=st.booleans(),
)
def test_mutated_valid_pdus_never_raise(
    index: int, edits: list[tuple[int, int]], cut: int, fix_length: bool
) -> None:
    frame = bytearray(VALID[index])
    for pos, value in edits:
        if pos < len(frame):
            frame[pos] = value
    frame = frame[: max(cut, 16)] if cut < len(frame) else frame
    if fix_length:
        frame[0:4] = len(frame).to_bytes(4, "big")
    s = bound_server()
    events = s.feed(bytes(frame), T0)
    _assert_no_internal_errors(events)
    assert all(not isinstance(e, ev.ProtocolError) or e.sequence is not None for e in events)
