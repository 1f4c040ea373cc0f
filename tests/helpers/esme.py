"""python-smpplib as the customer: an independent client for integration tests."""

from __future__ import annotations

from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.smpp


def connect(host: str, port: int, timeout: float = 30) -> Any:
    client = smpplib.client.Client(host, port, timeout=timeout, allow_unknown_opt_params=True)
    client.connect()
    return client


def bind(host: str, port: int, system_id: str, password: str, mode: str = "transceiver") -> Any:
    client = connect(host, port)
    getattr(client, f"bind_{mode}")(system_id=system_id, password=password, system_type="")
    return client


def bind_status(host: str, port: int, system_id: str, password: str) -> int:
    """The command_status a bind gets (0 = bound)."""
    client = connect(host, port)
    try:
        client.bind_transceiver(system_id=system_id, password=password)
    except smpplib.exceptions.PDUError as exc:
        return int(exc.args[1])
    finally:
        client.disconnect()
    return 0


def submit(client: Any, **fields: Any) -> Any:
    """Send one submit_sm; return its submit_sm_resp (a smpplib PDU)."""
    send(client, **fields)
    return client.read_pdu()


def send(client: Any, **fields: Any) -> Any:
    defaults: dict[str, Any] = {
        "source_addr_ton": smpplib.consts.SMPP_TON_INTL,
        "source_addr_npi": smpplib.consts.SMPP_NPI_ISDN,
        "source_addr": "4915100000001",
        "dest_addr_ton": smpplib.consts.SMPP_TON_INTL,
        "dest_addr_npi": smpplib.consts.SMPP_NPI_ISDN,
        "destination_addr": "4917600000002",
        "short_message": b"hello",
        "data_coding": 0,
        "esm_class": 0,
        "registered_delivery": 1,
    }
    defaults.update(fields)
    return client.send_message(**defaults)


def message_id(resp: Any) -> str:
    mid = resp.message_id
    return mid.decode() if isinstance(mid, bytes) else str(mid)


def submit_raw(client: Any, **fields: Any) -> Any:
    """A submit_sm smpplib would refuse to send in its state (before bind, as receiver)."""
    fields = {
        "source_addr": "1",
        "destination_addr": "4917600000002",
        "short_message": b"x",
    } | fields
    pdu = smpplib.smpp.make_pdu("submit_sm", client=client, **fields)
    client._socket.sendall(pdu.generate())
    return client.read_pdu()
