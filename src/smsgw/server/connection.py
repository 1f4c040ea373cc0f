"""One customer connection: the IO shell around the sans-IO ``Session``.

Bytes from the socket go into the session; its events are acted on here
(authenticate, validate, produce to Kafka, answer); its output goes back to the
socket, coalesced to one write per loop iteration. A submit is answered with
status 0 only from Kafka's delivery report (invariant 1).

No peer can starve the others (invariant 8, issue 11). Input is buffered
here and handed to the session one whole PDU at a time by a reader task that
yields to the loop every ``SLICE_PDUS`` PDUs, at most ``smpp_max_pdu_rate`` a
second (aiolimiter). Reading from the socket pauses (so TCP pushes back on the
peer) while any of these holds:
- a bind is being authenticated: nothing pipelined behind it is read until it
  is answered (SMPP 3.4 §2.2: the session state after the bind decides);
- the transport's unsent output is above ``smpp_output_high_water``
  (asyncio's pause_writing): a peer that does not read its responses stops
  being read;
- the input buffer holds more than ~two maximum PDUs, or the rate ceiling is
  reached, or the customer is flooding far over its TPS (``_throttled_flood``).
Before authentication: a connection unbound after ``smpp_bind_timeout_s`` is
closed (enquire_link does not extend it), and connections beyond the per-IP
or total limit are closed at once and counted.

Behind a load balancer that sends the PROXY protocol (``smpp_proxy_protocol_from``),
the connection's first octets are that header: the customer's address it names
replaces the proxy's for the per-IP limit, the bind lockout, the allowlist and
the logs (smsgw.server.proxy_header says what is believed).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

from aiolimiter import AsyncLimiter

from smsgw import log
from smsgw.auth import ip_allowed, parse_networks, verify_password
from smsgw.db.customers import Customer
from smsgw.kafka.producer import BacklogFull, ProduceError
from smsgw.log import LogBudget, clip
from smsgw.message import AcceptedMessage, encode, from_submission
from smsgw.records import Delivery
from smsgw.server.core import NodeCore
from smsgw.server.deliverer import Nacked
from smsgw.server.proxy_header import ProxyHeaderError, read_proxy_header
from smsgw.server.submit_outcome import Answer, SubmitOutcome
from smsgw.smpp import events as ev
from smsgw.smpp.deadline import DeadlineTimer
from smsgw.smpp.events import BindMode
from smsgw.smpp.pdu import HEADER_SIZE, FieldValue, UnsuccessSme
from smsgw.smpp.session import LocalProtocolError, Session, WindowFull
from smsgw.smpp.status import CommandStatus as S
from smsgw.smpp.submission import Rejection, parse_submission
from smsgw.state import smpp_date
from smsgw.tls import issued_by, peer_fingerprint, peer_subject_cn

SLICE_PDUS = 32  # PDUs one connection handles before the loop serves the others


def bound_pdu_rate(ceiling: float, tps: float) -> float:
    """PDUs/s read from a bound customer: what its TPS can use, never above `ceiling`.

    A customer sends submits (up to its TPS; more are throttled), answers to
    our deliver_sm (receipts and MO, about one per message) and an occasional
    enquire_link: 3 x TPS + 100 leaves ample room. Each PDU costs the listener
    tens of µs of CPU that every other session shares (an enquire_link ~60 µs).
    0 switches the ceiling off.
    """
    if not ceiling:
        return 0.0
    return min(ceiling, 3 * tps + 100)


def _pdu_limiter(rate: float) -> AsyncLimiter | None:
    return AsyncLimiter(rate, 1) if rate > 0 else None


class SmppConnection(asyncio.Protocol):
    def __init__(self, core: NodeCore, tls: ssl.SSLContext | None = None) -> None:
        self.core = core
        # SMPP over TLS: the connection is counted and limited as a TCP connection
        # first, then upgraded (a handshake never finished still holds its place
        # and meets the bind deadline, so TLS is no way around the limits).
        self.tls = tls
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
        self._timer = DeadlineTimer(self.loop, self._on_timer)
        self._closed = False
        self._deliveries: dict[int, asyncio.Future[S]] = {}
        self.log = log.get("smsgw.smpp").bind(bind=self.bind_id)
        # Reading: see the module docstring.
        self._inbuf = bytearray()
        self._in_high = 2 * s.smpp_max_pdu_size
        self._input = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._limiter = _pdu_limiter(s.smpp_unbound_pdu_rate)
        self._rate_limited = False
        self._hold_until = 0.0  # a throttled customer is not read again before this
        self._throttle_window = float("-inf")
        self._throttled = 0  # throttled answers in the current one-second window
        self._write_paused = False
        self._reading_paused = False
        self._counted_ip: str | None = None
        self._awaiting_proxy_header = False
        self._bind_timer: asyncio.TimerHandle | None = None
        self._log_budget = LogBudget(burst=5, period_s=60.0)

    # ------------------------------------------------------------ transport
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer_ip = peer[0] if peer else ""
        self.log = self.log.bind(peer=self.peer_ip)
        core, s = self.core, self.core.settings
        # A trusted proxy's connections are limited per customer address once its
        # header names it (_take_proxy_header), not all together as the proxy's.
        self._awaiting_proxy_header = (
            self.tls is None and bool(core.proxies) and ip_allowed(self.peer_ip, core.proxies)
        )
        refusal = None
        if len(core.connections) >= s.smpp_max_connections:
            refusal = "total"
        elif (
            not self._awaiting_proxy_header
            and core.connections_per_ip[self.peer_ip] >= s.smpp_max_connections_per_ip
        ):
            refusal = "per_ip"
        if refusal is not None:  # before any work or log line: the peer may be a flood
            core.count("connections_refused", "", refusal)
            self._closed = True
            transport.abort()
            return
        core.count("connections")
        core.connections.add(self)
        core.connections_per_ip[self.peer_ip] += 1
        self._counted_ip = self.peer_ip
        self._bind_timer = self.loop.call_later(s.smpp_bind_timeout_s, self._bind_deadline)
        if self.tls is not None:
            transport.pause_reading()  # the ClientHello is for the TLS layer, read by it
            self._reader = self.loop.create_task(self._start_tls(transport, self.tls))
            return
        self._start_reading(transport)

    def _start_reading(self, transport: asyncio.Transport) -> None:
        transport.set_write_buffer_limits(high=self.core.settings.smpp_output_high_water)
        self._reader = self.loop.create_task(self._read_loop())
        self._arm_timer()

    async def _start_tls(self, raw: asyncio.Transport, ctx: ssl.SSLContext) -> None:
        """TLS handshake on the counted TCP connection, then the SMPP session over it."""
        try:
            transport = await self.loop.start_tls(
                raw,
                self,
                ctx,
                server_side=True,
                ssl_handshake_timeout=self.core.settings.smpp_tls_handshake_timeout_s,
            )
        except Exception as exc:  # handshake refused, timed out, or the peer left
            self.core.count("tls_handshake_failed")
            self.log.debug("TLS handshake failed", error=clip(repr(exc)))
            raw.abort()
            self.connection_lost(None)
            return
        if transport is None or self._closed:
            if transport is not None:
                transport.abort()
            return
        self.transport = transport
        self._start_reading(transport)

    def data_received(self, data: bytes) -> None:
        self._inbuf += data
        self._input.set()
        self._update_reading()

    def pause_writing(self) -> None:
        """asyncio: unsent output above the high-water mark; stop reading this peer."""
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._input.set()
        self._update_reading()

    @property
    def buffered(self) -> int:
        """Octets this connection holds: unread input plus unsent output."""
        out = self.transport.get_write_buffer_size() if self.transport else 0
        return len(self._inbuf) + out

    def _blocked(self) -> bool:
        return self.session.paused or self._write_paused

    def _update_reading(self) -> None:
        """Pause the socket while this connection must not (or cannot yet) take input."""
        t = self.transport
        if t is None or self._closed or t.is_closing():
            return
        pause = self._blocked() or self._rate_limited or len(self._inbuf) >= self._in_high
        if pause and not self._reading_paused:
            t.pause_reading()
            self._reading_paused = True
        elif not pause and self._reading_paused:
            t.resume_reading()
            self._reading_paused = False

    def _next_frame(self) -> bytes | None:
        """One whole PDU from the input buffer (None: incomplete).

        An unusable command_length hands the session everything buffered: its
        framer answers generic_nack and closes (SMPP has no resynchronisation).
        """
        buf = self._inbuf
        if len(buf) < HEADER_SIZE:
            return None
        length = int.from_bytes(buf[0:4], "big")
        if length < HEADER_SIZE or length > self.session_max_pdu:
            frame = bytes(buf)
            buf.clear()
            return frame
        if len(buf) < length:
            return None
        frame = bytes(buf[:length])
        del buf[:length]
        return frame

    @property
    def session_max_pdu(self) -> int:
        return self.core.settings.smpp_max_pdu_size

    async def _read_loop(self) -> None:
        try:
            await self._read_forever()
        except Exception:  # a bug here must cost this session only, and be seen
            self.log.exception("reader failed, closing")
            self.abort()

    def _take_proxy_header(self) -> bool:
        """The PROXY header off the input (True: read, or the connection closed).

        False while it is incomplete. The customer's address it names is counted
        against the per-IP limit from here on, as a direct connection is.
        """
        try:
            header = read_proxy_header(self._inbuf)
        except ProxyHeaderError as exc:
            self.core.count("proxy_header_invalid")
            self.log.warning("connection from a proxy without a PROXY header", error=str(exc))
            self.abort()
            return True
        if header is None:
            return False
        del self._inbuf[: header.length]
        self._awaiting_proxy_header = False
        if header.source_ip is None or header.source_ip == self.peer_ip:
            return True
        core, ip = self.core, header.source_ip
        if self._counted_ip is not None:
            core.connections_per_ip[self._counted_ip] -= 1
            if core.connections_per_ip[self._counted_ip] <= 0:
                del core.connections_per_ip[self._counted_ip]
        self.log = self.log.bind(peer=ip, proxy=self.peer_ip)
        self.peer_ip = ip
        core.connections_per_ip[ip] += 1
        self._counted_ip = ip
        if core.connections_per_ip[ip] > core.settings.smpp_max_connections_per_ip:
            core.count("connections_refused", "", "per_ip")
            self.abort()
        return True

    async def _read_forever(self) -> None:
        """Hand input to the session, a bounded amount per loop iteration."""
        while not self._closed:
            await self._input.wait()
            self._input.clear()
            if self._awaiting_proxy_header and not self._take_proxy_header():
                continue
            handled = 0
            while not self._closed and not self.session.closed and not self._blocked():
                hold = self._hold_until - self.loop.time()
                if hold > 0 and len(self._inbuf) >= HEADER_SIZE:  # over its TPS: see _on_submit
                    self._rate_limited = True
                    self._update_reading()
                    await asyncio.sleep(hold)
                    self._rate_limited = False
                    continue
                frame = self._next_frame()
                if frame is None:
                    break
                if self._limiter is not None:
                    if not self._limiter.has_capacity():
                        self._rate_limited = True
                        self._update_reading()
                    await self._limiter.acquire()
                    self._rate_limited = False
                    if self._closed:
                        return
                self._handle(self.session.feed(frame, self.loop.time()))
                handled += 1
                if handled % SLICE_PDUS == 0:
                    self._flush()
                    await asyncio.sleep(0)
            self._flush()
            self._update_reading()

    def _bind_deadline(self) -> None:
        """Unbound after smpp_bind_timeout_s (whatever it sent meanwhile): close."""
        if self._closed or self.system_id is not None:
            return
        self.core.count("bind_timeouts")
        self.log.info("no bind in time, closing", timeout_s=self.core.settings.smpp_bind_timeout_s)
        if self.transport:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._input.set()
        if self._counted_ip is None:  # refused at connection_made: nothing to undo
            return
        if self._bind_timer:
            self._bind_timer.cancel()
        self.core.connections_per_ip[self._counted_ip] -= 1
        if self.core.connections_per_ip[self._counted_ip] <= 0:
            del self.core.connections_per_ip[self._counted_ip]
        self._counted_ip = None
        self.core.connections.discard(self)
        if self._log_budget.suppressed:
            self.log.warning(
                "protocol error lines suppressed", count=self._log_budget.take_suppressed()
            )
        for fut in self._deliveries.values():
            if not fut.done():
                fut.set_exception(ConnectionError("customer connection closed"))
        self._deliveries.clear()
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
            if not self.transport.is_closing():
                # close() waits for unsent output; a peer that never reads
                # would hold the descriptor for good.
                self.loop.call_later(5.0, self.abort)
            self.transport.close()
        self._arm_timer()  # a send, an answer or a state change can bring a deadline closer

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _arm_timer(self) -> None:
        if self._closed:
            self._timer.cancel()
        else:
            self._timer.follow(self.session.next_deadline())

    def _on_timer(self) -> None:
        self._handle(self.session.tick(self.loop.time()))
        self._flush()

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
                self._log_protocol_error(e)
            elif isinstance(e, ev.ConnectionShouldClose):
                self.log.info("session closing", reason=clip(e.reason, 200))
            elif isinstance(e, ev.RequestRefused):
                self.core.count("refused", self.system_id or "", f"0x{int(e.status):08X}")
            elif isinstance(e, ev.UnbindRequested):
                self.log.info("customer unbinds")
            elif isinstance(e, ev.DeliverResponse):
                self._delivery_answered(e.sequence, e.status, e.nacked)
            elif isinstance(e, ev.ResponseTimeout) and e.sequence in self._deliveries:
                self._delivery_answered(e.sequence, None)

    def _log_protocol_error(self, e: ev.ProtocolError) -> None:
        """A few lines per connection and minute; the rest counted (metric, closing line)."""
        if not self._log_budget.allow(self.loop.time()):
            self.core.count("log_suppressed")
            return
        suppressed = self._log_budget.take_suppressed()
        extra = {"suppressed_before": suppressed} if suppressed else {}
        self.log.warning("protocol error", status=e.status.name, detail=clip(e.detail), **extra)

    # ------------------------------------------------------------ bind
    async def _on_bind(self, e: ev.BindRequested) -> None:
        status, customer = await self._authenticate(e)
        if self._closed:
            return
        if status is S.ESME_ROK and customer is not None:
            if self._bind_timer:
                self._bind_timer.cancel()
            self.system_id, self.mode = customer.system_id, e.mode
            self._limiter = _pdu_limiter(
                bound_pdu_rate(self.core.settings.smpp_max_pdu_rate, customer.tps)
            )
            self.core.binds.add(self)
            self.session.accept_bind("smsgw")
            self.log = self.log.bind(customer=customer.system_id)
            self.log.info("bound", mode=e.mode.name, system_type=clip(e.system_type))
            self.core.count("binds", customer.system_id, "ok")
            if e.mode is not BindMode.TX:
                self.loop.call_soon(self.core.wake_delivery, customer.system_id)
        else:
            self.session.reject_bind(status)
            self.core.count("binds", self.core.customer_label(e.system_id), status.name)
        self._flush()
        # Input the customer pipelined behind its bind waited for this answer.
        self._input.set()
        self._update_reading()
        self._arm_timer()

    async def _authenticate(self, e: ev.BindRequested) -> tuple[S, Customer | None]:
        """Every refusal looks the same to the peer: ESME_RBINDFAIL, at the same delay.

        Distinct statuses (RINVSYSID, RINVPASWD) or timings told an attacker
        which system_ids exist and whether a guess was right even where the
        allowlist or a disabled account refused it. The allowlist and the
        enabled flag are checked *before* the password, which is then not
        checked at all; the reason is logged for the operator only.
        """
        core = self.core
        start = self.loop.time()
        customer = core.config.customers.get(e.system_id)
        known = customer.system_id if customer else None
        guard = core.bind_guard
        blocked = guard.admit(self.peer_ip, known, start)
        if blocked is not None:
            core.count("bind_throttled", "", blocked)
            # Logged once when the lockout starts: one line per attempt would be the flood.
            return await self._bind_refused(start, e, f"locked out ({blocked})", quiet=True)
        if customer is None:
            self._bind_failed(None)
            return await self._bind_refused(start, e, "unknown system_id")
        if not customer.enabled:
            return await self._bind_refused(start, e, "customer disabled")
        if not ip_allowed(self.peer_ip, parse_networks(customer.allow_ips)):
            self._bind_failed(None)
            return await self._bind_refused(start, e, "source outside the allowlist")
        cert_refusal = self._client_cert_refusal(customer)
        if cert_refusal is not None:
            self._bind_failed(None)
            return await self._bind_refused(start, e, cert_refusal)
        guard.started(self.peer_ip)
        try:  # hash check off the loop: Argon2 takes tens of ms by design
            ok = await asyncio.to_thread(verify_password, customer.password_hash, e.password)
        finally:
            guard.finished(self.peer_ip)
        if not ok:
            self._bind_failed(known)
            return await self._bind_refused(start, e, "wrong password")
        if core.binds_cluster_wide(customer.system_id) >= customer.max_binds:
            return await self._bind_refused(start, e, "max_binds reached")
        guard.succeeded(self.peer_ip, customer.system_id)
        return S.ESME_ROK, customer

    def _client_cert_refusal(self, customer: Customer) -> str | None:
        """Why this connection may not bind as `customer` for want of its certificate.

        The handshake verified any certificate presented against
        ``smpp_tls_client_ca``; here the customer's own rule applies: over TLS,
        with a certificate, and the pinned one if a fingerprint or name is set.
        """
        if not customer.require_client_cert:
            return None
        t = self.transport
        ssl_object = t.get_extra_info("ssl_object") if t is not None else None
        if ssl_object is None:
            return "client certificate required: not over TLS"
        fp = peer_fingerprint(ssl_object)
        if fp is None:
            return "client certificate required: none presented"
        if customer.client_ca_pem and not issued_by(ssl_object, customer.client_ca_pem):
            return "client certificate not issued by the customer's CA"
        if customer.client_cert_sha256 and fp != customer.client_cert_sha256:
            return f"client certificate {fp} is not the pinned one"
        if customer.client_cert_cn and peer_subject_cn(ssl_object) != customer.client_cert_cn:
            return "client certificate subject is not the pinned one"
        return None

    def _bind_failed(self, system_id: str | None) -> None:
        """Count a failure against the source IP (and the known system_id); log lockouts."""
        lock = self.core.bind_guard.failed(self.peer_ip, system_id, self.loop.time())
        if lock:
            self.core.count("bind_lockouts")
            self.log.warning(
                "bind failures: locking out",
                lock_s=lock,
                system_id=system_id or "unknown",
                scope="source IP, and the system_id from IPs it never bound from",
            )

    async def _bind_refused(
        self, start: float, e: ev.BindRequested, reason: str, *, quiet: bool = False
    ) -> tuple[S, Customer | None]:
        (self.log.debug if quiet else self.log.info)(
            "bind refused", system_id=clip(e.system_id), reason=reason
        )
        delay = self.core.settings.bind_failure_delay_s
        await asyncio.sleep(max(0.0, start + delay - self.loop.time()))
        return S.ESME_RBINDFAIL, None

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
            self._throttled_flood(n, tps)
            self.session.respond_submit(e.sequence, S.ESME_RTHROTTLED, command=e.command)
            self._schedule_flush()
            return
        read_at = self.loop.time()
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
        state = SubmitOutcome(
            len(messages),
            len(futures),
            read_at=read_at,
            timeout_s=core.settings.produce_timeout_s,
            failure=failure,
        )
        _Outcome(self, e, messages, futures, state)

    def _throttled_flood(self, n: int, tps: float) -> None:
        """Far over its TPS, a connection is read no faster than its TPS.

        A burst is answered ESME_RTHROTTLED at once (invariant 4), but beyond
        max(2 x TPS, 50) throttled answers in a second, reading it on only
        burns the CPU other customers need (18,000 submits/s against a TPS of
        100 raised a bystander's p95 to 1.8 s): its next submit would be
        throttled too until the bucket refills, so reading waits until then.
        """
        now = self.loop.time()
        if now - self._throttle_window >= 1.0:
            self._throttle_window, self._throttled = now, 0
        self._throttled += n
        if self._throttled > max(2 * tps, 50):
            self._hold_until = now + n / max(tps, 0.001)

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

    def _delivery_answered(self, sequence: int, status: S | None, nacked: bool = False) -> None:
        fut = self._deliveries.pop(sequence, None)
        if fut is not None and not fut.done():
            if nacked:
                fut.set_exception(Nacked(int(status or 0)))
            elif status is None:
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
    """One submit until its answer: delivery reports, or the produce timeout's timer.

    The decisions are ``SubmitOutcome``'s; this wires it to the futures, the
    loop's timer, the producer (records given up are withdrawn) and the session.
    """

    __slots__ = ("conn", "event", "futures", "messages", "state", "timer")

    def __init__(
        self,
        conn: SmppConnection,
        event: ev.SubmitReceived,
        messages: list[AcceptedMessage],
        futures: list[asyncio.Future[Any]],
        state: SubmitOutcome,
    ) -> None:
        self.conn = conn
        self.event = event
        self.messages = messages
        self.futures = futures
        self.state = state
        self.timer = conn.loop.call_at(state.deadline, self.expire)
        for fut in futures:
            fut.add_done_callback(self.one_done)

    def one_done(self, fut: asyncio.Future[Any]) -> None:
        if self.state.answered:
            return  # given up at the deadline (cancelled), or a late report: withdrawn
        i = self.futures.index(fut) if len(self.futures) > 1 else 0
        exc = None if fut.cancelled() else fut.exception()
        if exc is not None:
            self.conn.log.warning("kafka did not confirm", error=str(exc))
        self._answer(self.state.reported(i, exc is None and not fut.cancelled()))

    def expire(self) -> None:
        answer = self.state.expire(self.conn.loop.time())
        if answer is None and not self.state.answered:  # the loop ran the timer a hair early
            self.timer = self.conn.loop.call_at(self.state.deadline, self.expire)
            return
        if answer is not None:
            self.conn.log.warning(
                "kafka did not confirm in time",
                timeout_s=self.conn.core.settings.produce_timeout_s,
                records=len(answer.given_up),
            )
        self._answer(answer)

    def _answer(self, answer: Answer | None) -> None:
        if answer is None:
            return
        self.timer.cancel()
        for i in answer.given_up:  # their markers queued before the answer is written
            self.conn.core.producer.give_up(self.futures[i])
        self.conn.answer_submit(self.event, self.messages, answer.ok, answer.failure)
