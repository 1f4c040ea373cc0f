"""Python peers of the interop tier, speaking the same JSON lines as node/peer.js.

Run as ``python -m tests.interop.python_peer``: commands on stdin, events on
stdout, so that the tests drive these peers exactly as node-smpp and jsmpp.

- Customers: python-smpplib. Each bound client gets a reader thread (smpplib's
  client is blocking); text is encoded with smpplib's own GSM 03.38 encoder
  (data_coding 0) or as UCS2 (data_coding 8).
- SMSCs (providers): smpp34's asyncio ``Server`` (a Rust core), on a loop thread.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import threading
import time
from typing import Any

import smpp34
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


# ---- the provider side: an SMSC on smpp34's Server ----------------------------------

_servers: dict[str, Smsc] = {}
TAG_MESSAGE_PAYLOAD = 0x0424
TAG_RECEIPTED_MESSAGE_ID = 0x001E
TAG_MESSAGE_STATE = 0x0427


@functools.cache
def loop() -> asyncio.AbstractEventLoop:
    """The SMSCs' event loop, started on first use in a thread of its own."""
    new = asyncio.new_event_loop()
    threading.Thread(target=new.run_forever, daemon=True, name="smpp34").start()
    return new


class Smsc:
    """Answers submit_sm with hex ids and receipts them with the same number in decimal (the
    hex id in receipted_message_id): after the submit_sm_resp, or before it for the
    destinations in ``receipt_before``."""

    def __init__(self, peer: str, cmd: dict[str, Any]) -> None:
        self.peer, self.cmd = peer, cmd
        self.server = smpp34.Server("127.0.0.1", int(cmd["port"]), system_id=cmd["system_id"])
        self.esmes: dict[str, Any] = {}
        self.next_id = 0xC0000000
        self.task: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Future[None]] = set()

    async def run(self) -> None:
        await self.server.start()
        emit(self.peer, "listening", port=int(self.cmd["port"]))
        while True:
            event = await self.server.next()
            if isinstance(event, smpp34.Esme):
                self.esmes[event.session_id] = event
                emit(self.peer, "bound", system_id=event.system_id, receives=event.can_receive)
            elif isinstance(event, smpp34.SubmitSmEvent):
                task = asyncio.ensure_future(self.submit(event))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            elif isinstance(event, smpp34.Unbound):
                esme = self.esmes.pop(event.session_id, None)
                emit(self.peer, "unbound", receives=bool(esme and esme.can_receive))

    async def submit(self, sm: Any) -> None:
        n = self.next_id
        self.next_id += 1
        hex_id = f"{n:X}"
        esme = self.esmes.get(sm.session_id)
        emit(
            self.peer,
            "submit",
            message_id=hex_id,
            decimal_id=str(n),
            receives=bool(esme and esme.can_receive),
            dest=sm.destination_addr,
            data_coding=sm.data_coding,
            esm_class=sm.esm_class,
            short_message=sm.short_message.hex(),
        )
        if sm.destination_addr in self.cmd.get("receipt_before", []):
            await self.receipt(n, sm)
            sm.accept(hex_id)
        else:
            sm.accept(hex_id)
            await asyncio.sleep(0.2)
            await self.receipt(n, sm)

    def receiver(self) -> Any:
        for esme in self.esmes.values():
            if esme.can_receive:
                return esme
        raise RuntimeError("no receiver bind")

    async def receipt(self, n: int, sm: Any) -> None:
        date = time.strftime("%y%m%d%H%M", time.gmtime())
        text = (
            f"id:{n} sub:001 dlvrd:001 submit date:{date} done date:{date} "
            "stat:DELIVRD err:000 text:"
        )
        try:
            resp = await self.receiver().deliver_sm(
                sm.source_addr,
                text.encode(),
                source_addr=sm.destination_addr,
                esm_class=0x04,
                # SMPP 3.4 §5.3.2.12: the TLV carries the submit_sm_resp id (hex here).
                tlvs=[
                    smpp34.Tlv(TAG_RECEIPTED_MESSAGE_ID, f"{n:X}".encode() + b"\0"),
                    smpp34.Tlv(TAG_MESSAGE_STATE, b"\x02"),
                ],
            )
            emit(self.peer, "receipt_sent", decimal_id=str(n), status=resp.command_status)
        except Exception as exc:
            emit(self.peer, "error", op="receipt", error=repr(exc))

    async def mo(self, cmd: dict[str, Any]) -> None:
        coding = int(cmd.get("data_coding", 0))
        text = cmd["text"].encode("utf-16-be" if coding == 8 else "latin-1")
        payload = bool(cmd.get("payload"))
        resp = await self.receiver().deliver_sm(
            cmd["dest"],
            b"" if payload else text,
            source_addr=cmd["source"],
            source_addr_ton=1,
            source_addr_npi=1,
            data_coding=coding,
            tlvs=[smpp34.Tlv(TAG_MESSAGE_PAYLOAD, text)] if payload else [],
        )
        emit(self.peer, "mo_sent", tag=cmd.get("tag", ""), status=resp.command_status)

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
        await self.server.stop()
        emit(self.peer, "stopped")


def _on_loop(peer: str, op: str, coro: Any) -> None:
    def done(fut: Any) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            emit(peer, "error", op=op, error=repr(fut.exception()))

    asyncio.run_coroutine_threadsafe(coro, loop()).add_done_callback(done)


def serve(peer: str, cmd: dict[str, Any]) -> None:
    smsc = _servers[peer] = Smsc(peer, cmd)

    async def start() -> None:
        smsc.task = asyncio.ensure_future(smsc.run())

    _on_loop(peer, "serve", start())


def mo(peer: str, cmd: dict[str, Any]) -> None:
    _on_loop(peer, "mo", _servers[peer].mo(cmd))


def stop(peer: str, cmd: dict[str, Any]) -> None:
    _on_loop(peer, "stop", _servers.pop(peer).stop())


OPS = {
    "bind": bind,
    "submit": submit,
    "enquire_link": enquire_link,
    "unbind": unbind,
    "serve": serve,
    "mo": mo,
    "stop": stop,
}


def main() -> None:
    emit("python", "ready", smpplib=_version("smpplib"), smpp34=_version("smpp34"))
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        try:
            OPS[cmd["op"]](cmd["peer"], cmd)
        except Exception as exc:  # reported to the test, which fails with it
            emit(cmd["peer"], "error", op=cmd["op"], error=repr(exc))


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    main()
