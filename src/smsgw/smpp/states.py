"""Bind states and, as one table of data, what each side accepts in each state.

`INBOUND[role][command][state]` is ACCEPT (hand to the session's handler),
IGNORE (consume silently; only for requests without a response) or the
CommandStatus the session refuses with by itself. A state missing from a row
means ESME_RINVBNDSTS. Responses are not in the table: they are matched
against our outstanding requests in any state but CLOSED.

Choices where SMPP 3.4 leaves room:
- enquire_link is answered in every open state, OPEN included (SMPP 5.0
  allows it there, and peers that probe before binding exist);
- a second bind while bound is ESME_RALYBND. A server in BINDING is paused
  (input stays buffered until the bind is answered), so for the server that
  column only documents intent;
- deliver_sm / alert_notification / outbind sent *to* the server are
  SMSC-to-ESME commands: a valid command in the wrong direction, so
  ESME_RINVBNDSTS (deliver_sm_resp, or generic_nack where no response
  exists), not RINVCMDID, which would claim the command is unknown;
- cancel_sm / replace_sm are understood but not supported by the gateway:
  ESME_RCANCELFAIL / ESME_RREPLACEFAIL on a transmitter bind.
"""

from __future__ import annotations

import enum
from typing import Final

from smsgw.smpp.status import CommandStatus


class Role(enum.Enum):
    SERVER = "server"  # we are the SMSC side (customers bind to us)
    CLIENT = "client"  # we are the ESME side (we bind to a provider)


class State(enum.Enum):
    OPEN = "open"  # connected, not bound
    BINDING = "binding"  # bind sent (client) or being authenticated (server)
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBINDING = "unbinding"  # we sent unbind and await unbind_resp
    CLOSED = "closed"


class _Ignore(enum.Enum):
    IGNORE = "ignore"


class _Accept(enum.Enum):
    ACCEPT = "accept"


ACCEPT: Final = _Accept.ACCEPT
IGNORE: Final = _Ignore.IGNORE
Verdict = _Accept | _Ignore | CommandStatus

OP, B, U = State.OPEN, State.BINDING, State.UNBINDING
TX, RX, TRX = State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX
BOUND: Final = frozenset({TX, RX, TRX})
_S = CommandStatus
_OK = ACCEPT
_BND = _S.ESME_RINVBNDSTS
_ALY = _S.ESME_RALYBND

_BIND_ROW: dict[State, Verdict] = {OP: _OK, B: _BND, TX: _ALY, RX: _ALY, TRX: _ALY, U: _BND}
_TRANSMIT_ROW: dict[State, Verdict] = {TX: _OK, TRX: _OK, RX: _BND}
_EVERYWHERE: dict[State, Verdict] = {OP: _OK, B: _OK, TX: _OK, RX: _OK, TRX: _OK, U: _OK}

INBOUND: Final[dict[Role, dict[str, dict[State, Verdict]]]] = {
    Role.SERVER: {
        "bind_transmitter": _BIND_ROW,
        "bind_receiver": _BIND_ROW,
        "bind_transceiver": _BIND_ROW,
        "submit_sm": _TRANSMIT_ROW,
        "data_sm": _TRANSMIT_ROW,
        "submit_multi": _TRANSMIT_ROW,
        "query_sm": _TRANSMIT_ROW,
        "cancel_sm": {TX: _S.ESME_RCANCELFAIL, TRX: _S.ESME_RCANCELFAIL},
        "replace_sm": {TX: _S.ESME_RREPLACEFAIL, TRX: _S.ESME_RREPLACEFAIL},
        "enquire_link": _EVERYWHERE,
        "unbind": {TX: _OK, RX: _OK, TRX: _OK, U: _OK},
        "deliver_sm": {},
        "alert_notification": {},
        "outbind": {},
    },
    Role.CLIENT: {
        "deliver_sm": {RX: _OK, TRX: _OK},
        "data_sm": {RX: _OK, TRX: _OK},
        "alert_notification": {RX: IGNORE, TRX: IGNORE},
        "outbind": {OP: _OK},
        "enquire_link": _EVERYWHERE,
        "unbind": {TX: _OK, RX: _OK, TRX: _OK, U: _OK},
    },
}

# Requests we may originate, per role, and the states that allow them.
OUTBOUND: Final[dict[Role, dict[str, frozenset[State]]]] = {
    Role.SERVER: {
        "deliver_sm": frozenset({RX, TRX}),
        "data_sm": frozenset({RX, TRX}),
        "enquire_link": BOUND,
        "unbind": BOUND,
    },
    Role.CLIENT: {
        "bind_transmitter": frozenset({OP}),
        "bind_receiver": frozenset({OP}),
        "bind_transceiver": frozenset({OP}),
        "submit_sm": frozenset({TX, TRX}),
        "data_sm": frozenset({TX, TRX}),
        "submit_multi": frozenset({TX, TRX}),
        "query_sm": frozenset({TX, TRX}),
        "enquire_link": BOUND,
        "unbind": BOUND,
    },
}

BOUND_STATE_FOR: Final = {
    "bind_transmitter": TX,
    "bind_receiver": RX,
    "bind_transceiver": TRX,
}


def verdict(role: Role, command: str, state: State) -> Verdict:
    """What `role` does with request `command` arriving in `state`."""
    return INBOUND[role].get(command, {}).get(state, _BND)
