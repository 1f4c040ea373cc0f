"""One customer connection: the IO shell around the sans-IO ``Session``.

Bytes from the socket go into the session; its events are acted on here
(authenticate, validate, produce to Kafka, answer); its output goes back to the
socket, coalesced to one write per loop iteration. A submit is answered with
status 0 only from Kafka's delivery report (invariant 1).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from smsgw import log
from smsgw.auth import ip_allowed, parse_networks, verify_password
from smsgw.db.customers import Customer
from smsgw.kafka.producer import BacklogFull, ProduceError
from smsgw.message import AcceptedMessage, encode, from_submission
from smsgw.records import Delivery
from smsgw.server.core import NodeCore
from smsgw.smpp import events as ev
from smsgw.smpp.events import BindMode
from smsgw.smpp.pdu import FieldValue, UnsuccessSme
from smsgw.smpp.session import LocalProtocolError, Session, WindowFull
from smsgw.smpp.status import CommandStatus as S
from smsgw.smpp.submission import Rejection, parse_submission
from smsgw.state import smpp_date


class SmppConnection(asyncio.Protocol):
    def __init__(self, core: NodeCore) -> None:
        self.core = core
        self.loop = asyncio.get_running_loop()
        self.bind_id = core.new_bind_id()
        self.system_id: str | None = None
        self.mode: BindMode | None = None
        self.transport: asyncio.Transport | None = None
        self.peer_ip = ""
        s = core.settings
        self.session = Session(
            now=self.loop.time(),
            max_pdu_size=s.smpp_max_pdu_size,
            window=s.smpp_window,
            enquire_link_interval=s.smpp_enquire_link_s,
            inactivity_timeout=s.smpp_inactivity_s,
            response_timeout=s.smpp_response_timeout_s,
        )
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._deliveries: dict[int, asyncio.Future[S]] = {}
        self.log = log.get("smsgw.smpp").bind(bind=self.bind_id)

    # ------------------------------------------------------------ transport
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer_ip = peer[0] if peer else ""
        self.log = self.log.bind(peer=self.peer_ip)
        self.core.count("connections")
        self.core.connections.add(self)
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        self._handle(self.session.feed(data, self.loop.time()))
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.core.connections.discard(self)
        for fut in self._deliveries.values():
            if not fut.done():
                fut.set_exception(ConnectionError("customer connection closed"))
        self._deliveries.clear()
        if self._timer:
            self._timer.cancel()
        if self.system_id is not None:
            self.core.binds.remove(self)
            self.log.info("unbound", customer=self.system_id, reason=str(exc or "closed"))

    def close_for(self, reason: str) -> None:
        """Ask the customer to unbind (config change, shutdown); close if it will not."""
        if self._closed:
            return
        self.log.info("closing bind", reason=reason)
        try:
            self.session.send_unbind(self.loop.time())
        except Exception:
            if self.transport:
                self.transport.close()
            return
        self._flush()
        self.loop.call_later(2.0, self._abort)

    def abort(self) -> None:
        if self.transport and not self._closed:
            self.transport.abort()

    def _abort(self) -> None:
        if self.transport and not self._closed:
            self.transport.close()

    def _flush(self) -> None:
        out = self.session.data_to_send()
        if out and self.transport and not self._closed:
            self.transport.write(out)
        if self.session.closed and self.transport and not self._closed:
            self.transport.close()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _arm_timer(self) -> None:
        deadline = self.session.next_deadline()
        if deadline is None or self._closed:
            return
        delay = max(0.05, deadline - self.loop.time())
        self._timer = self.loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._handle(self.session.tick(self.loop.time()))
        self._flush()
        self._arm_timer()

    # ------------------------------------------------------------ events
    def _handle(self, events: list[Any]) -> None:
        for e in events:
            if isinstance(e, ev.SubmitReceived):
                self._on_submit(e)
            elif isinstance(e, ev.BindRequested):
                self.loop.create_task(self._on_bind(e))
            elif isinstance(e, ev.QueryReceived):
                self._on_query(e)
            elif isinstance(e, ev.ProtocolError):
                self.core.count("protocol_errors", self.system_id or "", f"0x{int(e.status):08X}")
                self.log.warning("protocol error", status=e.status.name, detail=e.detail)
            elif isinstance(e, ev.ConnectionShouldClose):
                self.log.info("session closing", reason=e.reason)
            elif isinstance(e, ev.RequestRefused):
                self.core.count("refused", self.system_id or "", f"0x{int(e.status):08X}")
            elif isinstance(e, ev.UnbindRequested):
                self.log.info("customer unbinds")
            elif isinstance(e, ev.DeliverResponse):
                self._delivery_answered(e.sequence, e.status)
            elif isinstance(e, ev.ResponseTimeout) and e.sequence in self._deliveries:
                self._delivery_answered(e.sequence, None)

    # ------------------------------------------------------------ bind
    async def _on_bind(self, e: ev.BindRequested) -> None:
        status, customer = await self._authenticate(e)
        if self._closed:
            return
        if status is S.ESME_ROK and customer is not None:
            self.system_id, self.mode = customer.system_id, e.mode
            self.core.binds.add(self)
            self.session.accept_bind("smsgw")
            self.log = self.log.bind(customer=customer.system_id)
            self.log.info("bound", mode=e.mode.name, system_type=e.system_type)
            self.core.count("binds", customer.system_id, "ok")
            if e.mode is not BindMode.TX:
                self.loop.call_soon(self.core.wake_delivery, customer.system_id)
        else:
            self.session.reject_bind(status)
            self.core.count("binds", e.system_id, status.name)
            self.log.info("bind refused", system_id=e.system_id, status=status.name)
        self._flush()
        # Input the customer pipelined behind its bind waited for this answer.
        self._handle(self.session.feed(b"", self.loop.time()))
        self._flush()
        self._arm_timer()

    async def _authenticate(self, e: ev.BindRequested) -> tuple[S, Customer | None]:
        core = self.core
        customer = core.config.customers.get(e.system_id)
        # Hash check off the loop: Argon2 takes tens of ms by design.
        ok = await asyncio.to_thread(
            verify_password, customer.password_hash if customer else None, e.password
        )
        if customer is None or not ok:
            await asyncio.sleep(core.settings.bind_failure_delay_s)  # brute-force damping
            return (S.ESME_RINVSYSID if customer is None else S.ESME_RINVPASWD), None
        if not customer.enabled:
            return S.ESME_RBINDFAIL, None
        if not ip_allowed(self.peer_ip, parse_networks(customer.allow_ips)):
            self.log.warning("bind from outside allowlist", system_id=e.system_id)
            return S.ESME_RBINDFAIL, None
        if core.binds_cluster_wide(customer.system_id) >= customer.max_binds:
            return S.ESME_RBINDFAIL, None
        return S.ESME_ROK, customer

    # ------------------------------------------------------------ submit
    def _on_submit(self, e: ev.SubmitReceived) -> None:
        core = self.core
        assert self.system_id is not None
        customer = core.config.customers.get(self.system_id)
        if customer is None or not customer.enabled:
            self._refuse(e, S.ESME_RSUBMITFAIL, "customer removed or disabled")
            return
        parsed = parse_submission(e.command, e.pdu)
        if isinstance(parsed, Rejection):
            self._refuse(e, parsed.status, parsed.reason)
            return
        n = len(parsed.destinations)
        tps = core.tps_here(customer.system_id, customer.tps)
        if not core.throttle.try_acquire(customer.system_id, tps, n):
            core.count("throttled", customer.system_id)
            self.session.respond_submit(e.sequence, S.ESME_RTHROTTLED, command=e.command)
            self._schedule_flush()
            return
        message_id = core.ids.next_id()
        messages = from_submission(
            parsed,
            ids=[message_id] * n,  # submit_multi: one id, receipts tell destinations apart
            customer=customer.system_id,
            bind=self.bind_id,
            received_at=time.time(),
        )
        futures: list[asyncio.Future[Any]] = []
        failure: S | None = None
        for m in messages:
            try:
                futures.append(core.producer.produce(core.topics.submit, encode(m), m.kafka_key))
            except BacklogFull:
                failure = S.ESME_RMSGQFUL
                break
            except ProduceError:
                failure = S.ESME_RSYSERR
                break
        if failure is not None and not futures:
            self._refuse(e, failure, "Kafka backlog full" if failure == S.ESME_RMSGQFUL else "")
            return
        outcome = _Outcome(self, e, messages, futures, failure)
        for fut in futures:
            fut.add_done_callback(outcome.one_done)

    def _refuse(self, e: ev.SubmitReceived, status: S, reason: str) -> None:
        self.core.count("rejected", self.system_id or "", status.name)
        self.log.debug("submit refused", status=status.name, reason=reason)
        self.session.respond_submit(e.sequence, status, command=e.command)
        self._schedule_flush()

    def answer_submit(
        self, e: ev.SubmitReceived, messages: list[AcceptedMessage], ok: list[bool], failure: S
    ) -> None:
        """All of this submit's records have a delivery report (or were never produced)."""
        core = self.core
        first = messages[0]
        if e.command == "submit_multi":
            unsuccess = [
                UnsuccessSme(
                    m.destination.addr.encode(), m.destination.ton, m.destination.npi, int(failure)
                )
                for m, good in zip(messages, ok, strict=True)
                if not good
            ]
            if any(ok):
                self.session.respond_submit(
                    e.sequence, S.ESME_ROK, first.id, command=e.command, unsuccess=unsuccess
                )
            else:
                self.session.respond_submit(e.sequence, failure, command=e.command)
        elif ok[0]:
            self.session.respond_submit(e.sequence, S.ESME_ROK, first.id, command=e.command)
        else:
            self.session.respond_submit(e.sequence, failure, command=e.command)
        if any(ok):
            core.states.accepted(first.id, first.customer, first.source.addr)
            core.count("accepted", first.customer)
            core.record_latency((time.time() - first.received_at) * 1000)
        if not all(ok):
            core.count("rejected", first.customer, failure.name)
        self._schedule_flush()

    # ------------------------------------------------------------ deliver
    @property
    def can_deliver(self) -> bool:
        return (
            not self._closed
            and self.mode in (BindMode.RX, BindMode.TRX)
            and self.session.outstanding < self.session.window
        )

    def send_deliver(self, d: Delivery) -> asyncio.Future[S] | None:
        """Queue a deliver_sm; the future gets the customer's status (None: no room now)."""
        fields: dict[str, FieldValue] = {
            "service_type": "",
            "source_addr_ton": d.source.ton,
            "source_addr_npi": d.source.npi,
            "source_addr": d.source.addr,
            "dest_addr_ton": d.destination.ton,
            "dest_addr_npi": d.destination.npi,
            "destination_addr": d.destination.addr,
            "esm_class": d.esm_class,
            "protocol_id": 0,
            "priority_flag": 0,
            "schedule_delivery_time": "",
            "validity_period": "",
            "registered_delivery": 0,
            "replace_if_present_flag": 0,
            "data_coding": d.data_coding,
            "sm_default_msg_id": 0,
            "short_message": d.short_message if len(d.short_message) <= 254 else b"",
        }
        tlvs = list(d.tlvs)
        if len(d.short_message) > 254:
            tlvs.append((0x0424, d.short_message))
        try:
            seq = self.session.send_deliver(fields, self.loop.time(), tlvs=tlvs)
        except (WindowFull, LocalProtocolError):
            return None
        fut: asyncio.Future[S] = self.loop.create_future()
        self._deliveries[seq] = fut
        self._schedule_flush()
        return fut

    def _delivery_answered(self, sequence: int, status: S | None) -> None:
        fut = self._deliveries.pop(sequence, None)
        if fut is not None and not fut.done():
            if status is None:
                fut.set_exception(TimeoutError("no deliver_sm_resp in time"))
            else:
                fut.set_result(status)
        if self.system_id is not None:
            self.core.wake_delivery(self.system_id)

    # ------------------------------------------------------------ query
    def _on_query(self, e: ev.QueryReceived) -> None:
        assert self.system_id is not None
        rec = self.core.states.lookup(e.message_id, self.system_id, e.source_addr)
        if rec is None:
            self.session.respond_query(e.sequence, S.ESME_RQUERYFAIL, message_id=e.message_id)
        else:
            self.session.respond_query(
                e.sequence,
                message_id=e.message_id,
                final_date=smpp_date(rec.updated_at) if rec.state.final else "",
                message_state=int(rec.state),
                # One octet (SMPP 3.4 §4.8.2): the gateway's own 9xx codes do not fit.
                error_code=rec.error_code if rec.error_code <= 0xFF else 0,
            )
        self._schedule_flush()


class _Outcome:
    """Collects the delivery reports of one submit's records (one per destination)."""

    __slots__ = ("conn", "event", "failure", "futures", "messages", "ok", "pending")

    def __init__(
        self,
        conn: SmppConnection,
        event: ev.SubmitReceived,
        messages: list[AcceptedMessage],
        futures: list[asyncio.Future[Any]],
        failure: S | None,
    ) -> None:
        self.conn = conn
        self.event = event
        self.messages = messages
        self.futures = futures
        self.failure = failure or S.ESME_RSYSERR
        self.ok = [False] * len(messages)
        self.pending = len(futures)

    def one_done(self, fut: asyncio.Future[Any]) -> None:
        i = self.futures.index(fut) if len(self.futures) > 1 else 0
        if fut.exception() is None:
            self.ok[i] = True
        else:
            self.conn.log.warning("kafka did not confirm", error=str(fut.exception()))
        self.pending -= 1
        if self.pending == 0:
            self.conn.answer_submit(self.event, self.messages, self.ok, self.failure)
