"""python-smpplib customers for the interop tier, speaking the same JSON lines as node/peer.js.

Run as ``python -m tests.interop.python_peer``: commands on stdin, events on
stdout, so that the tests drive smpplib exactly as they drive node-smpp and
jsmpp. Each bound client gets a reader thread (smpplib's client is blocking);
text is encoded with smpplib's own GSM 03.38 encoder (data_coding 0) or as
UCS2 (data_coding 8).
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm
import smpplib.smpp

_out = threading.Lock()
_clients: dict[str, Any] = {}
_tags: dict[tuple[str, int], str] = {}
_tags_lock = threading.Lock()
_send_locks: dict[int, threading.Lock] = {}


def send(client: Any, pdu: Any) -> None:
    """Write one PDU whole: the stdin thread and the reader thread both send."""
    with _send_locks.setdefault(id(client), threading.Lock()):
        client.send_pdu(pdu)


def emit(peer: str, ev: str, **fields: Any) -> None:
    with _out:
        sys.stdout.write(json.dumps({"peer": peer, "ev": ev, **fields}) + "\n")
        sys.stdout.flush()


def _s(v: Any) -> str:
    return v.decode("latin-1") if isinstance(v, bytes) else ("" if v is None else str(v))


def bind(peer: str, cmd: dict[str, Any]) -> None:
    client = smpplib.client.Client(
        cmd["host"], cmd["port"], timeout=None, allow_unknown_opt_params=True
    )

    def sent(pdu: Any, **_: Any) -> None:
        with _tags_lock:
            tag = _tags.pop((peer, int(pdu.sequence)), "")
        emit(peer, "submit_resp", tag=tag, status=int(pdu.status), message_id=_s(pdu.message_id))

    def error(pdu: Any) -> None:
        if pdu.command == "submit_sm_resp":
            sent(pdu)
        else:
            emit(peer, "error_pdu", command=pdu.command, status=int(pdu.status))

    def received(pdu: Any, **_: Any) -> int:
        esm = int(pdu.esm_class)
        fields = {
            "esm_class": esm,
            "data_coding": int(pdu.data_coding),
            "source": _s(pdu.source_addr),
            "dest": _s(pdu.destination_addr),
            "short_message": bytes(pdu.short_message or b"").hex(),
            "receipted_message_id": _s(getattr(pdu, "receipted_message_id", None)).rstrip("\0"),
            "message_state": getattr(pdu, "message_state", None),
        }
        emit(peer, "receipt" if esm & 0x3C else "mo", **fields)
        return 0

    client.set_message_sent_handler(sent)
    client.set_error_pdu_handler(error)
    client.set_message_received_handler(received)
    client.connect()
    mode = {"trx": "transceiver", "tx": "transmitter", "rx": "receiver"}[cmd.get("type", "trx")]
    getattr(client, f"bind_{mode}")(system_id=cmd["system_id"], password=cmd["password"])
    _clients[peer] = client
    emit(peer, "bound", type=f"bind_{mode}")
    threading.Thread(target=_read, args=(peer, client), daemon=True).start()


def _read(peer: str, client: Any) -> None:
    while True:
        try:
            pdu = client.read_pdu()
        except (smpplib.exceptions.ConnectionError, OSError):
            emit(peer, "closed")
            return
        if pdu.command == "enquire_link_resp":
            emit(peer, "enquire_link_resp", status=int(pdu.status))
        elif pdu.command == "unbind_resp":
            emit(peer, "unbound", status=int(pdu.status))
            client.disconnect()
            emit(peer, "closed")
            return
        elif pdu.command == "submit_sm_resp":
            client.message_sent_handler(pdu=pdu)
        elif pdu.command == "deliver_sm":
            status = client.message_received_handler(pdu=pdu)
            resp = smpplib.smpp.make_pdu(
                "deliver_sm_resp", client=client, sequence=pdu.sequence, status=status
            )
            send(client, resp)
        elif pdu.command == "enquire_link":
            send(
                client,
                smpplib.smpp.make_pdu("enquire_link_resp", client=client, sequence=pdu.sequence),
            )
        elif pdu.command == "generic_nack":
            emit(peer, "error_pdu", command=pdu.command, status=int(pdu.status))


def submit(peer: str, cmd: dict[str, Any]) -> None:
    client = _clients[peer]
    coding = int(cmd.get("data_coding", 0))
    body = smpplib.gsm.gsm_encode(cmd["text"]) if coding == 0 else cmd["text"].encode("utf-16-be")
    fields: dict[str, Any] = {}
    esm = 0
    if "udh" in cmd:
        body = bytes.fromhex(cmd["udh"]) + body
        esm = smpplib.consts.SMPP_GSMFEAT_UDHI
    if "sar" in cmd:
        ref, total, seq = cmd["sar"]
        fields |= {"sar_msg_ref_num": ref, "sar_total_segments": total, "sar_segment_seqnum": seq}
    pdu = smpplib.smpp.make_pdu(
        "submit_sm",
        client=client,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr=cmd.get("source", "4915100000001"),
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr=cmd["dest"],
        short_message=body,
        data_coding=coding,
        esm_class=esm,
        registered_delivery=int(cmd.get("registered_delivery", 1)),
        **fields,
    )
    with _tags_lock:
        _tags[(peer, int(pdu.sequence))] = cmd["tag"]
    send(client, pdu)


def enquire_link(peer: str, cmd: dict[str, Any]) -> None:
    client = _clients[peer]
    send(client, smpplib.smpp.make_pdu("enquire_link", client=client))


def unbind(peer: str, cmd: dict[str, Any]) -> None:
    client = _clients.pop(peer)
    send(client, smpplib.smpp.make_pdu("unbind", client=client))


OPS = {"bind": bind, "submit": submit, "enquire_link": enquire_link, "unbind": unbind}


def main() -> None:
    emit("python", "ready", smpplib=_version())
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        try:
            OPS[cmd["op"]](cmd["peer"], cmd)
        except Exception as exc:  # reported to the test, which fails with it
            emit(cmd["peer"], "error", op=cmd["op"], error=repr(exc))


def _version() -> str:
    from importlib.metadata import version

    return version("smpplib")


if __name__ == "__main__":
    main()
