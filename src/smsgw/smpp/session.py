"""One SMPP connection as a sans-IO state machine (the h11 model).

The IO shell calls `feed(data, now)` with whatever the socket produced and
acts on the returned events (after answering a bind, `feed(b"", now)` to
process what the peer sent behind it), calls `tick(now)` when `next_deadline()` is
due, and writes `data_to_send()` to the socket after every call. Automatic
answers (generic_nack, enquire_link_resp, bind-state refusals, unbind_resp)
are queued by the session itself; answers that need the gateway (bind
authentication, accepting a submit after the Kafka ack) are explicit calls.
feed() never raises for anything the peer sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from smsgw.smpp import events as ev
from smsgw.smpp.codec import decode, decode_header, encode
from smsgw.smpp.events import BindMode, Event
from smsgw.smpp.framing import DEFAULT_MAX_PDU_SIZE, Framer, FramingError
from smsgw.smpp.pdu import (
    COMMAND_NAMES,
    MAX_SEQUENCE,
    RESPONSE_BIT,
    DecodeError,
    FieldValue,
    Pdu,
    Tlv,
    UnsuccessSme,
    response_name,
)
from smsgw.smpp.states import (
    ACCEPT,
    BOUND,
    BOUND_STATE_FOR,
    IGNORE,
    OUTBOUND,
    Role,
    State,
    verdict,
)
from smsgw.smpp.status import CommandStatus

S = CommandStatus
SC_INTERFACE_VERSION = 0x0210
WINDOWED = frozenset({"deliver_sm", "data_sm", "submit_sm", "submit_multi"})
# An unanswered one of these means the link (not one message) is broken.
FATAL_TIMEOUT = frozenset(
    {"enquire_link", "unbind", "bind_transmitter", "bind_receiver", "bind_transceiver"}
)


class LocalProtocolError(RuntimeError):
    """The IO shell asked for something the protocol state forbids (our bug)."""


class WindowFull(LocalProtocolError):
    """`window` requests are already awaiting a response; wait for one."""


@dataclass(slots=True)
class _Pending:
    command: str
    deadline: float


class Session:
    """Server (customer-facing) or client (provider-facing) side of one bind."""

    def __init__(
        self,
        role: Role = Role.SERVER,
        *,
        now: float,
        max_pdu_size: int = DEFAULT_MAX_PDU_SIZE,
        window: int = 10,
        enquire_link_interval: float = 30.0,
        inactivity_timeout: float = 120.0,
        response_timeout: float = 10.0,
        initial_sequence: int = 1,
    ) -> None:
        if not 1 <= initial_sequence <= MAX_SEQUENCE:
            raise ValueError("initial_sequence must be in 1..0x7FFFFFFF")
        self.role = role
        self.window = window
        self.enquire_link_interval = enquire_link_interval
        self.inactivity_timeout = inactivity_timeout
        self.response_timeout = response_timeout
        self.state = State.OPEN
        self.bind_mode: BindMode | None = None
        self._framer = Framer(max_pdu_size=max_pdu_size)
        self._out = bytearray()
        self._seq = initial_sequence
        self._pending: dict[int, _Pending] = {}
        self._inbound: dict[int, str] = {}  # requests the shell must still answer
        self._last_rx = now

    # ------------------------------------------------------------ plumbing
    @property
    def closed(self) -> bool:
        """True once the shell should flush data_to_send() and drop the transport."""
        return self.state is State.CLOSED

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    @property
    def paused(self) -> bool:
        """Server: a bind awaits accept_bind/reject_bind; later input stays buffered.

        Like h11's PAUSED: what the peer pipelines behind its bind must be
        judged in the state the bind answer creates. Call feed(b"", now)
        after answering the bind to process it.
        """
        return self.role is Role.SERVER and self.state is State.BINDING

    @property
    def outstanding(self) -> int:
        """Windowed requests of ours (deliver/submit) still awaiting a response."""
        return sum(1 for p in self._pending.values() if p.command in WINDOWED)

    def pending_requests(self) -> dict[int, str]:
        """sequence -> command for every request of ours still unanswered."""
        return {seq: p.command for seq, p in self._pending.items()}

    def next_deadline(self) -> float | None:
        """When tick() next has something to do (None once CLOSED)."""
        if self.state is State.CLOSED:
            return None
        times = [p.deadline for p in self._pending.values()]
        times.append(self._last_rx + self.inactivity_timeout)
        if self.state in BOUND and not self._enquire_pending():
            times.append(self._last_rx + self.enquire_link_interval)
        return min(times)

    def _next_sequence(self) -> int:
        seq = self._seq
        self._seq = 1 if seq >= MAX_SEQUENCE else seq + 1
        return seq

    def _queue(self, pdu: Pdu) -> None:
        self._out += encode(pdu)

    def _close(self, reason: str) -> list[Event]:
        self.state = State.CLOSED
        return [ev.ConnectionShouldClose(reason)]

    def _enquire_pending(self) -> bool:
        return any(p.command == "enquire_link" for p in self._pending.values())

    # ------------------------------------------------------------ input
    def feed(self, data: bytes, now: float) -> list[Event]:
        """Consume bytes from the peer; returns the events they produce."""
        if self.state is State.CLOSED:
            return []
        if data:
            self._last_rx = now
            self._framer.feed(data)
        events: list[Event] = []
        while not self.closed and not self.paused:
            try:
                frame = self._framer.next_frame()
            except FramingError as exc:
                self._queue(Pdu("generic_nack", exc.sequence, exc.status))
                events.append(ev.ProtocolError(exc.status, exc.sequence, True, exc.detail))
                events += self._close(f"framing: {exc.detail}")
                break
            if frame is None:
                break
            try:
                events += self._on_frame(frame, now)
            except Exception as exc:  # invariant 8: a bad PDU costs at most its session
                seq = decode_header(frame)[3]
                self._queue(Pdu("generic_nack", seq, S.ESME_RSYSERR))
                events.append(ev.ProtocolError(S.ESME_RSYSERR, seq, False, f"internal: {exc!r}"))
        return events

    def _on_frame(self, frame: bytes, now: float) -> list[Event]:
        _length, command_id, _status, seq = decode_header(frame)
        command = COMMAND_NAMES.get(command_id)
        if command is None:
            self._queue(Pdu("generic_nack", seq, S.ESME_RINVCMDID))
            detail = f"unknown command_id 0x{command_id:08X}"
            return [ev.ProtocolError(S.ESME_RINVCMDID, seq, False, detail)]
        if command_id & RESPONSE_BIT:
            try:
                return self._on_response(decode(frame))
            except DecodeError as exc:
                return [ev.ProtocolError(exc.status, seq, False, exc.detail)]
        rule = verdict(self.role, command, self.state)
        if rule is IGNORE:
            return []
        if isinstance(rule, CommandStatus):
            self._queue(Pdu(response_name(command), seq, rule))
            return [ev.RequestRefused(seq, command, rule)]
        assert rule is ACCEPT
        try:
            pdu = decode(frame)
        except DecodeError as exc:
            nack = exc.status in (S.ESME_RINVCMDLEN, S.ESME_RINVCMDID)
            self._queue(Pdu("generic_nack" if nack else response_name(command), seq, exc.status))
            return [ev.ProtocolError(exc.status, seq, False, exc.detail)]
        return self._on_request(pdu)

    def _on_request(self, pdu: Pdu) -> list[Event]:
        seq, command = pdu.sequence, pdu.command
        if command == "enquire_link":
            self._queue(Pdu("enquire_link_resp", seq))
            return []
        if command == "unbind":
            self._queue(Pdu("unbind_resp", seq))
            return [ev.UnbindRequested(seq), *self._close("peer unbound")]
        if command in BOUND_STATE_FOR:
            self.state = State.BINDING
            self._inbound[seq] = command
            return [
                ev.BindRequested(
                    seq,
                    BindMode(command),
                    pdu.get_str("system_id"),
                    pdu.get_str("password"),
                    pdu.get_str("system_type"),
                    pdu.get_int("interface_version"),
                    pdu.get_int("addr_ton"),
                    pdu.get_int("addr_npi"),
                    pdu.get_str("address_range"),
                )
            ]
        self._inbound[seq] = command
        if command == "query_sm":
            return [
                ev.QueryReceived(
                    seq,
                    pdu.get_str("message_id"),
                    pdu.get_str("source_addr"),
                    pdu.get_int("source_addr_ton"),
                    pdu.get_int("source_addr_npi"),
                )
            ]
        if command == "outbind":
            self._inbound.pop(seq, None)
            return [ev.OutbindReceived(pdu.get_str("system_id"), pdu.get_str("password"))]
        if self.role is Role.CLIENT:
            return [ev.DeliverReceived(seq, command, pdu)]
        return [ev.SubmitReceived(seq, command, pdu)]

    def _on_response(self, pdu: Pdu) -> list[Event]:
        seq, status = pdu.sequence, CommandStatus.for_code(pdu.status)
        pending = self._pending.get(seq)
        if pending is None or (
            pdu.command != "generic_nack" and pdu.command != response_name(pending.command)
        ):
            if pdu.command == "generic_nack":
                return [ev.ProtocolError(status, seq, False, "unsolicited generic_nack")]
            return [ev.UnexpectedResponse(seq, pdu.command, status)]
        del self._pending[seq]
        command = pending.command
        if command == "enquire_link":
            return [ev.EnquireLinkResponse(seq, status)]
        if command == "unbind":
            return [ev.UnbindResponse(seq, status), *self._close("unbound")]
        if command in BOUND_STATE_FOR:
            if status.is_ok:
                self.state = BOUND_STATE_FOR[command]
                self.bind_mode = BindMode(command)
            else:
                self.state = State.OPEN
            return [ev.BindResponse(seq, status, pdu.get_str("system_id"))]
        if command in WINDOWED and self.role is Role.SERVER:
            nacked = pdu.command == "generic_nack"
            message_id = "" if nacked else pdu.get_str("message_id")
            return [ev.DeliverResponse(seq, command, status, message_id, nacked)]
        if command in WINDOWED:
            message_id = pdu.get_str("message_id")
            return [ev.SubmitResponse(seq, command, status, message_id, pdu)]
        return [ev.ResponseReceived(seq, command, status, pdu)]

    # ------------------------------------------------------------ timers
    def tick(self, now: float) -> list[Event]:
        """Fire whatever timers are due at `now`."""
        if self.state is State.CLOSED:
            return []
        events: list[Event] = []
        for seq, pending in sorted(self._pending.items()):
            if pending.deadline <= now:
                del self._pending[seq]
                events.append(ev.ResponseTimeout(seq, pending.command))
                if pending.command in FATAL_TIMEOUT and not self.closed:
                    events += self._close(f"{pending.command} timed out")
        if self.closed:
            return events
        if now - self._last_rx >= self.inactivity_timeout:
            return events + self._close("inactivity")
        if (
            self.state in BOUND
            and now - self._last_rx >= self.enquire_link_interval
            and not self._enquire_pending()
        ):
            self.send_enquire_link(now)
        return events

    # ------------------------------------------------------------ answers
    def _answer(self, sequence: int, default: str) -> str:
        if self.state is State.CLOSED:
            return ""
        return self._inbound.pop(sequence, default)

    def accept_bind(self, system_id: str, *, interface_version: int = 0x34) -> None:
        """Server: authentication passed; bind_resp OK and move to the bound state."""
        seq, command = self._bind_being_authenticated()
        tlvs: tuple[Tlv, ...] = ((SC_INTERFACE_VERSION, bytes([interface_version])),)
        fields = {"system_id": system_id}
        self._queue(Pdu(response_name(command), seq, 0, fields, tlvs))
        self.state = BOUND_STATE_FOR[command]
        self.bind_mode = BindMode(command)

    def reject_bind(self, status: CommandStatus) -> None:
        """Server: authentication failed; bind_resp with `status`, back to OPEN."""
        if status == 0:
            raise ValueError("reject_bind needs a non-zero status")
        seq, command = self._bind_being_authenticated()
        self._queue(Pdu(response_name(command), seq, status))
        self.state = State.OPEN

    def _bind_being_authenticated(self) -> tuple[int, str]:
        """(sequence, command) of the bind awaiting accept/reject; forgets it."""
        if self.role is Role.SERVER and self.state is State.BINDING:
            for seq, command in list(self._inbound.items()):
                if command in BOUND_STATE_FOR:
                    del self._inbound[seq]
                    return seq, command
        raise LocalProtocolError(f"no bind awaiting an answer (state {self.state.value})")

    def respond_submit(
        self,
        sequence: int,
        status: CommandStatus = S.ESME_ROK,
        message_id: str | None = None,
        *,
        command: str | None = None,
        unsuccess: Iterable[UnsuccessSme] = (),
    ) -> None:
        """Server: answer a SubmitReceived. Error responses carry no body.

        `command` defaults to the command of the request with that sequence.
        A no-op once the session is CLOSED (the transport is gone).
        """
        request = self._answer(sequence, command or "submit_sm")
        if not request:
            return
        fields: dict[str, FieldValue] = {"message_id": message_id or ""}
        if request == "submit_multi":
            fields["unsuccess_smes"] = tuple(unsuccess)
        self._queue(Pdu(response_name(request), sequence, status, fields))

    def respond_query(
        self,
        sequence: int,
        status: CommandStatus = S.ESME_ROK,
        *,
        message_id: str = "",
        final_date: str = "",
        message_state: int = 0,
        error_code: int = 0,
    ) -> None:
        """Server: answer a QueryReceived."""
        if not self._answer(sequence, "query_sm"):
            return
        fields: dict[str, FieldValue] = {
            "message_id": message_id,
            "final_date": final_date,
            "message_state": message_state,
            "error_code": error_code,
        }
        self._queue(Pdu("query_sm_resp", sequence, status, fields))

    def respond_deliver(
        self, sequence: int, status: CommandStatus = S.ESME_ROK, *, command: str | None = None
    ) -> None:
        """Client: answer a DeliverReceived (message_id is unused, sent empty)."""
        request = self._answer(sequence, command or "deliver_sm")
        if request:
            self._queue(Pdu(response_name(request), sequence, status, {"message_id": ""}))

    # ------------------------------------------------------------ requests
    def _request(
        self,
        command: str,
        now: float,
        fields: Mapping[str, FieldValue] | None = None,
        tlvs: Iterable[Tlv] = (),
    ) -> int:
        allowed = OUTBOUND[self.role].get(command, frozenset())
        if self.state not in allowed:
            raise LocalProtocolError(f"{command} not allowed in state {self.state.value}")
        if command in WINDOWED and self.outstanding >= self.window:
            raise WindowFull(f"{self.outstanding} requests outstanding (window {self.window})")
        seq = self._next_sequence()
        self._queue(Pdu(command, seq, 0, dict(fields or {}), tuple(tlvs)))
        self._pending[seq] = _Pending(command, now + self.response_timeout)
        return seq

    def send_deliver(
        self,
        fields: Mapping[str, FieldValue],
        now: float,
        *,
        tlvs: Iterable[Tlv] = (),
        command: str = "deliver_sm",
    ) -> int:
        """Server: queue a deliver_sm (or data_sm); returns its sequence number."""
        if command not in ("deliver_sm", "data_sm"):
            raise ValueError(command)
        return self._request(command, now, fields, tlvs)

    def send_submit(
        self,
        fields: Mapping[str, FieldValue],
        now: float,
        *,
        tlvs: Iterable[Tlv] = (),
        command: str = "submit_sm",
    ) -> int:
        """Client: queue a submit_sm / data_sm / submit_multi; returns its sequence."""
        if command not in ("submit_sm", "data_sm", "submit_multi"):
            raise ValueError(command)
        return self._request(command, now, fields, tlvs)

    def send_bind(
        self,
        mode: BindMode,
        system_id: str,
        password: str,
        now: float,
        *,
        system_type: str = "",
        interface_version: int = 0x34,
        addr_ton: int = 0,
        addr_npi: int = 0,
        address_range: str = "",
    ) -> int:
        """Client: queue a bind; BindResponse reports the outcome."""
        fields: dict[str, FieldValue] = {
            "system_id": system_id,
            "password": password,
            "system_type": system_type,
            "interface_version": interface_version,
            "addr_ton": addr_ton,
            "addr_npi": addr_npi,
            "address_range": address_range,
        }
        seq = self._request(mode.value, now, fields)
        self.state = State.BINDING
        return seq

    def send_enquire_link(self, now: float) -> int:
        return self._request("enquire_link", now)

    def send_unbind(self, now: float) -> int:
        """Queue unbind; UnbindResponse + ConnectionShouldClose follow its answer."""
        seq = self._request("unbind", now)
        self.state = State.UNBINDING
        return seq
