"""A customer (ESME) that submits and receives at once: python-smpplib with a reader thread."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.exceptions


@dataclass
class Received:
    receipted_id: str
    esm_class: int
    text: bytes
    source: str
    dest: str
    message_state: int | None


class Customer:
    def __init__(
        self,
        host: str,
        port: int,
        system_id: str,
        password: str,
        mode: str = "transceiver",
        *,
        ssl_context: Any = None,
    ) -> None:
        self.host, self.port = host, port
        self.ssl_context = ssl_context  # SMPP over TLS (smpplib wraps its socket in it)
        self.system_id, self.password, self.mode = system_id, password, mode
        self.responses: dict[int, tuple[int, str]] = {}
        self.receipts: list[Received] = []
        self.mos: list[Received] = []
        self.queries: dict[str, tuple[int, int]] = {}
        self.lock = threading.Lock()
        self.client: Any = None
        self.reader: threading.Thread | None = None
        self._stop = threading.Event()

    def bind(self, timeout: float = 30.0) -> Customer:
        """Connect and bind, waiting up to ``timeout`` for bind_resp.

        Not the reader's 1-s poll: the gateway checks the password with a deliberately
        slow hash, and on a loaded machine its bind_resp took longer than a second
        (smpplib then raises ConnectionError and the test failed before it began).
        """
        self._stop.clear()
        c = smpplib.client.Client(
            self.host,
            self.port,
            timeout=timeout,
            allow_unknown_opt_params=True,
            ssl_context=self.ssl_context,
        )
        c.set_message_sent_handler(self._sent)
        c.set_message_received_handler(self._received)
        c.set_error_pdu_handler(self._error)
        c.set_query_resp_handler(self._queried)
        c.connect()
        getattr(c, f"bind_{self.mode}")(system_id=self.system_id, password=self.password)
        # The reader polls: a short timeout lets it notice close() (idle, it enquires).
        c.timeout = 1
        c._socket.settimeout(1)
        self.client = c
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.client.read_once()
            except (smpplib.exceptions.ConnectionError, OSError):
                return
            except smpplib.exceptions.PDUError:
                continue

    def _sent(self, pdu: Any, **_: Any) -> None:
        mid = pdu.message_id.decode() if isinstance(pdu.message_id, bytes) else str(pdu.message_id)
        with self.lock:
            self.responses[pdu.sequence] = (int(pdu.status), mid)

    def _queried(self, pdu: Any, **_: Any) -> None:
        mid = pdu.message_id.decode() if isinstance(pdu.message_id, bytes) else str(pdu.message_id)
        with self.lock:
            self.queries[mid] = (int(pdu.status), int(pdu.message_state or 0))

    def _error(self, pdu: Any) -> None:
        if pdu.command == "submit_sm_resp":
            with self.lock:
                self.responses[pdu.sequence] = (int(pdu.status), "")

    def _received(self, pdu: Any, **_: Any) -> int:
        def s(v: Any) -> str:
            return v.decode() if isinstance(v, bytes) else str(v or "")

        rid = s(getattr(pdu, "receipted_message_id", "")).rstrip("\0")
        state = getattr(pdu, "message_state", None)
        rec = Received(
            rid,
            int(pdu.esm_class),
            bytes(pdu.short_message or b""),
            s(pdu.source_addr),
            s(pdu.destination_addr),
            None if state is None else int(state),
        )
        with self.lock:
            (self.receipts if int(pdu.esm_class) & 0x3C else self.mos).append(rec)
        return 0

    def submit(
        self,
        dest: str,
        text: bytes = b"hello",
        *,
        source: str = "4915100000001",
        registered_delivery: int = 1,
        **fields: Any,
    ) -> int:
        pdu = self.client.send_message(
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr=source,
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr=dest,
            short_message=text,
            registered_delivery=registered_delivery,
            **fields,
        )
        return int(pdu.sequence)

    def wait(self, what: Any, timeout: float = 30.0, message: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if what():
                    return
            time.sleep(0.05)
        raise AssertionError(f"timed out: {message}")

    def accepted_ids(self) -> dict[int, str]:
        with self.lock:
            return {seq: mid for seq, (st, mid) in self.responses.items() if st == 0}

    def close(self) -> None:
        self._stop.set()
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.unbind()
            with contextlib.suppress(Exception):
                self.client.disconnect()
        if self.reader:
            self.reader.join(5)

    def query(self, message_id: str, source: str = "4915100000001") -> None:
        """Send query_sm; the answer lands in ``queries`` (message_id -> (status, state))."""
        self.client.query_message(
            message_id=message_id, source_addr_ton=1, source_addr_npi=1, source_addr=source
        )
