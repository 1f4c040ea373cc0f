"""Sans-IO SMPP 3.4: codec, framing, session state machine, submission checks.

Nothing in this package touches a socket, an event loop or a clock: bytes go
in, events come out, bytes to send are handed back (the h11 model). The IO
shell (listener actor, provider connector, simulators) owns the transport.
Only `codec` imports python-smpplib.
"""

from smsgw.smpp.codec import decode, encode
from smsgw.smpp.events import BindMode, Event
from smsgw.smpp.pdu import DecodeError, DestAddress, EncodeError, Pdu, UnsuccessSme
from smsgw.smpp.session import LocalProtocolError, Session, WindowFull
from smsgw.smpp.states import Role, State
from smsgw.smpp.status import CommandStatus
from smsgw.smpp.submission import Rejection, Submission, parse_submission

__all__ = [
    "BindMode",
    "CommandStatus",
    "DecodeError",
    "DestAddress",
    "EncodeError",
    "Event",
    "LocalProtocolError",
    "Pdu",
    "Rejection",
    "Role",
    "Session",
    "State",
    "Submission",
    "UnsuccessSme",
    "WindowFull",
    "decode",
    "encode",
    "parse_submission",
]
