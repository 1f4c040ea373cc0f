"""Events a Session hands to its IO shell (frozen values, no behaviour)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from smsgw.smpp.pdu import Pdu
from smsgw.smpp.status import CommandStatus


class BindMode(enum.Enum):
    """The three binds; the value is the request's command name."""

    TX = "bind_transmitter"
    RX = "bind_receiver"
    TRX = "bind_transceiver"


@dataclass(frozen=True, slots=True)
class BindRequested:
    """Server: the peer asks to bind; answer with accept_bind() / reject_bind()."""

    sequence: int
    mode: BindMode
    system_id: str
    password: str
    system_type: str
    interface_version: int
    addr_ton: int
    addr_npi: int
    address_range: str


@dataclass(frozen=True, slots=True)
class SubmitReceived:
    """Server: submit_sm / data_sm / submit_multi; answer with respond_submit()."""

    sequence: int
    command: str
    pdu: Pdu


@dataclass(frozen=True, slots=True)
class QueryReceived:
    """Server: query_sm; answer with respond_query()."""

    sequence: int
    message_id: str
    source_addr: str
    ton: int
    npi: int


@dataclass(frozen=True, slots=True)
class DeliverReceived:
    """Client: deliver_sm / data_sm from the SMSC; answer with respond_deliver()."""

    sequence: int
    command: str
    pdu: Pdu


@dataclass(frozen=True, slots=True)
class OutbindReceived:
    """Client: the SMSC asks us to bind (outbind)."""

    system_id: str
    password: str


@dataclass(frozen=True, slots=True)
class UnbindRequested:
    """The peer unbound; unbind_resp is queued and the session is CLOSED."""

    sequence: int


@dataclass(frozen=True, slots=True)
class DeliverResponse:
    """Server: the answer to our deliver_sm / data_sm (generic_nack included)."""

    sequence: int
    command: str
    status: CommandStatus
    message_id: str
    nacked: bool = False  # the answer was generic_nack: a failure whatever its status (§4.3)


@dataclass(frozen=True, slots=True)
class SubmitResponse:
    """Client: the answer to our submit_sm / data_sm / submit_multi."""

    sequence: int
    command: str
    status: CommandStatus
    message_id: str
    pdu: Pdu


@dataclass(frozen=True, slots=True)
class BindResponse:
    """Client: the answer to our bind; status 0 means we are bound now."""

    sequence: int
    status: CommandStatus
    system_id: str


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """Any other awaited response (query_sm_resp on the client side, ...)."""

    sequence: int
    command: str
    status: CommandStatus
    pdu: Pdu


@dataclass(frozen=True, slots=True)
class EnquireLinkResponse:
    sequence: int
    status: CommandStatus


@dataclass(frozen=True, slots=True)
class UnbindResponse:
    """Our unbind was answered; the session is CLOSED."""

    sequence: int
    status: CommandStatus


@dataclass(frozen=True, slots=True)
class ResponseTimeout:
    """A request of ours went unanswered for response_timeout seconds.

    Its window slot is freed; for submits/delivers the outcome is unknown.
    """

    sequence: int
    command: str


@dataclass(frozen=True, slots=True)
class RequestRefused:
    """The session refused a request by itself (bind state, unsupported, ...)."""

    sequence: int
    command: str
    status: CommandStatus


@dataclass(frozen=True, slots=True)
class UnexpectedResponse:
    """A response that matches none of our outstanding requests (not answered)."""

    sequence: int
    command: str
    status: CommandStatus


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """Malformed input. Whatever answer SMPP wants is already queued."""

    status: CommandStatus
    sequence: int | None
    close: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ConnectionShouldClose:
    """Flush data_to_send(), then close the transport. The session is CLOSED."""

    reason: str


Event = (
    BindRequested
    | SubmitReceived
    | QueryReceived
    | DeliverReceived
    | OutbindReceived
    | UnbindRequested
    | DeliverResponse
    | SubmitResponse
    | BindResponse
    | ResponseReceived
    | EnquireLinkResponse
    | UnbindResponse
    | ResponseTimeout
    | RequestRefused
    | UnexpectedResponse
    | ProtocolError
    | ConnectionShouldClose
)
