"""SmscSimulator: an asyncio SMPP server playing an SMS provider.

Built on smsgw's sans-IO Session (role SERVER): the simulator only decides
(authenticate, accept/throttle/fail a submit, which outcome, when to send the
receipt) and the session does the protocol. Everything runs in callbacks on
one event loop, with one write per connection per batch of input.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
from collections import defaultdict
from collections.abc import Iterable
from types import TracebackType

from benchmarks.smsc_sim.config import SimConfig
from benchmarks.smsc_sim.connection import SmscConnection
from benchmarks.smsc_sim.delivery import Deliverer, Delivery
from benchmarks.smsc_sim.receipts import (
    FIRST_ID,
    TAG_MESSAGE_PAYLOAD,
    format_id,
    preview,
    receipt_fields,
    submit_date,
)
from benchmarks.smsc_sim.stats import ReceivedSubmit, SimStats
from smsgw.smpp import BindMode, CommandStatus, Event
from smsgw.smpp import events as ev
from smsgw.smpp.pdu import FieldValue, Pdu

S = CommandStatus
TICK_INTERVAL = 0.5  # session timers (enquire_link, response timeouts)
MO_INTERVAL = 0.05


class SmscSimulator:
    """The simulated SMSC. `await start()`, use, `await stop()` (or `async with`)."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = cfg = config or SimConfig()
        self.stats = SimStats()
        self.received: list[ReceivedSubmit] = []
        self._rng = random.Random(cfg.seed)
        self._ids = itertools.count(FIRST_ID)
        self._bind_ids = itertools.count(1)
        self._receipt_id_format = cfg.receipt_id_format or cfg.id_format
        total = sum(cfg.outcomes.values())
        self._outcome_names = list(cfg.outcomes)
        self._outcome_cum = list(itertools.accumulate(w / total for w in cfg.outcomes.values()))
        self._conns: set[SmscConnection] = set()
        self._bound: defaultdict[str, int] = defaultdict(int)
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deliverer: Deliverer | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._t0 = 0.0
        self._tps_second = -1
        self._tps_count = 0
        self._fail_left = 0
        self._fail_status = S.ESME_RSYSERR
        self._paused = False
        self._held: list[tuple[SmscConnection, ev.SubmitReceived]] = []
        self._mo_credit = 0.0
        self._mo_counter = itertools.count(1)

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._deliverer = Deliverer(loop, self.stats, self.config.retry_delay)
        self._t0 = loop.time()
        self._server = await loop.create_server(
            lambda: SmscConnection(self, next(self._bind_ids)),
            self.config.host,
            self.config.port,
            ssl=self.config.tls,
        )
        self._timers.append(loop.call_later(TICK_INTERVAL, self._tick))
        if self.config.mo_rate > 0:
            self._timers.append(loop.call_later(MO_INTERVAL, self._generate_mo))

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("simulator not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._deliverer is not None:
            self._deliverer.close()
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):
            conn.flush()
            if conn.transport is not None:
                conn.transport.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SmscSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def elapsed(self) -> float:
        """Seconds since start() (the per-second stats are keyed by its int)."""
        return self._loop.time() - self._t0 if self._loop else 0.0

    # ------------------------------------------------------------ fault injection
    def fail_next(self, n: int, status: CommandStatus = S.ESME_RSYSERR) -> None:
        """Answer the next `n` submits with `status` (before any other check)."""
        self._fail_left = n
        self._fail_status = status

    def drop_connections(self) -> int:
        """Abort every TCP connection at once (no unbind); returns how many."""
        conns = list(self._conns)
        for conn in conns:
            conn.abort()
        return len(conns)

    def pause_responses(self) -> None:
        """Hold submit_sm_resp (and the receipts behind them) until resume."""
        self._paused = True

    def resume_responses(self) -> None:
        self._paused = False
        held, self._held = self._held, []
        now = self._now()
        touched: set[SmscConnection] = set()
        for conn, event in held:
            if not conn.session.closed:
                self._answer_submit(conn, event, now)
                touched.add(conn)
        self._flush(touched)

    @property
    def bound(self) -> dict[str, int]:
        """system_id -> bound sessions right now."""
        return {k: v for k, v in self._bound.items() if v}

    @property
    def backlog(self) -> int:
        """Receipts/MO not yet acknowledged by the customer."""
        return self._deliverer.backlog() if self._deliverer else 0

    def send_mo(self, source: str, dest: str, text: str, *, system_id: str | None = None) -> None:
        """Queue an MO deliver_sm for a receiver/transceiver bind of `system_id`."""
        try:
            body, coding = text.encode("gsm03.38"), 0
        except (UnicodeError, LookupError):
            body, coding = text.encode("utf-16-be"), 8
        fields: dict[str, FieldValue] = {
            "source_addr_ton": 1,
            "source_addr_npi": 1,
            "source_addr": source,
            "dest_addr_ton": 1,
            "dest_addr_npi": 1,
            "destination_addr": dest,
            "data_coding": coding,
            "short_message": body,
        }
        sid = system_id or self.config.system_id
        deliverer = self._require_deliverer()
        deliverer.send_now(Delivery("mo", sid, fields, ()), self._now())
        deliverer.flush()

    # ------------------------------------------------------------ connection callbacks
    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _require_deliverer(self) -> Deliverer:
        if self._deliverer is None:
            raise RuntimeError("simulator not started")
        return self._deliverer

    def _on_connect(self, conn: SmscConnection) -> None:
        self._conns.add(conn)
        self.stats.connections += 1

    def _on_lost(self, conn: SmscConnection) -> None:
        self._conns.discard(conn)
        if conn.system_id:
            self._bound[conn.system_id] -= 1
            self._require_deliverer().remove_receiver(conn)
            conn.system_id = ""

    def _on_data(self, conn: SmscConnection, data: bytes) -> None:
        now = self._now()
        self._handle(conn, conn.session.feed(data, now), now)
        self._flush((conn,))

    def _flush(self, conns: Iterable[SmscConnection]) -> None:
        """Receipts to other binds first (the race mode wants them first), then these."""
        self._require_deliverer().flush()
        for conn in conns:
            conn.flush()

    def _handle(self, conn: SmscConnection, events: list[Event], now: float) -> None:
        deliverer = self._require_deliverer()
        i = 0
        while i < len(events):
            event = events[i]
            i += 1
            if isinstance(event, ev.SubmitReceived):
                if self._paused:
                    self._held.append((conn, event))
                else:
                    self._answer_submit(conn, event, now)
            elif isinstance(event, ev.DeliverResponse):
                deliverer.on_response(conn, event.sequence, event.status, now)
            elif isinstance(event, ev.BindRequested):
                self._answer_bind(conn, event, now)
                events += conn.session.feed(b"", now)  # what was pipelined behind it
            elif isinstance(event, ev.ResponseTimeout):
                if event.command in ("deliver_sm", "data_sm"):
                    deliverer.on_response(conn, event.sequence, None, now)
            elif isinstance(event, ev.QueryReceived):
                conn.session.respond_query(event.sequence, S.ESME_RQUERYFAIL)
            elif isinstance(event, ev.UnbindRequested):
                self.stats.unbinds += 1
            elif isinstance(event, ev.ConnectionShouldClose):
                deliverer.remove_receiver(conn)

    def _answer_bind(self, conn: SmscConnection, event: ev.BindRequested, now: float) -> None:
        cfg = self.config
        password = cfg.credentials().get(event.system_id)
        status: CommandStatus | None = None
        if password is None:
            status = S.ESME_RINVSYSID
        elif password != event.password:
            status = S.ESME_RINVPASWD
        elif cfg.max_binds is not None and self._bound[event.system_id] >= cfg.max_binds:
            status = cfg.max_binds_status
        elif event.mode is BindMode.TRX and not cfg.transceiver:
            status = S.ESME_RBINDFAIL
        if status is not None:
            conn.session.reject_bind(status)
            self.stats.bind_failures += 1
            return
        conn.session.accept_bind("smsc-sim")
        conn.system_id = event.system_id
        self._bound[event.system_id] += 1
        self.stats.binds += 1
        if conn.receiving:
            self._require_deliverer().add_receiver(conn, now)

    # ------------------------------------------------------------ submits
    def _verdict(self, second: int) -> CommandStatus | None:
        cfg = self.config
        if self._fail_left > 0:
            self._fail_left -= 1
            return self._fail_status
        if cfg.permanent_error is not None:
            return cfg.permanent_error
        if cfg.tps_limit is not None:
            if second != self._tps_second:
                self._tps_second, self._tps_count = second, 0
            if self._tps_count >= cfg.tps_limit:
                return S.ESME_RTHROTTLED
        if cfg.reject_rate and self._rng.random() < cfg.reject_rate:
            return cfg.reject_status
        return None

    def _outcome(self) -> str:
        if len(self._outcome_names) == 1:
            return self._outcome_names[0]
        i = bisect.bisect_right(self._outcome_cum, self._rng.random())
        return self._outcome_names[min(i, len(self._outcome_names) - 1)]

    def _answer_submit(self, conn: SmscConnection, event: ev.SubmitReceived, now: float) -> None:
        cfg, stats, session = self.config, self.stats, conn.session
        stats.submits += 1
        second = int(now - self._t0)
        stats.per_second_submits[second] += 1
        status = self._verdict(second)
        if status is not None:
            if status == S.ESME_RTHROTTLED:
                stats.throttled += 1
            else:
                stats.rejected += 1
            stats.rejected_by_status[int(status)] += 1
            session.respond_submit(event.sequence, status)
            return
        if second == self._tps_second:
            self._tps_count += 1
        stats.accepted += 1
        stats.per_second_accepted[second] += 1
        number = next(self._ids)
        message_id = format_id(number, cfg.id_format)
        pdu = event.pdu
        if cfg.record_received:
            self.received.append(self._record(conn, event, message_id, now))
        wanted = pdu.get_int("registered_delivery") & 3
        if not wanted:
            session.respond_submit(event.sequence, S.ESME_ROK, message_id)
            return
        stat = self._outcome()
        if wanted == 2 and stat == "DELIVRD":
            session.respond_submit(event.sequence, S.ESME_ROK, message_id)
            return
        receipt = self._receipt(conn, pdu, number, stat)
        deliverer = self._require_deliverer()
        if cfg.receipt_before_resp:
            deliverer.send_now(receipt, now)
            deliverer.flush()
            session.respond_submit(event.sequence, S.ESME_ROK, message_id)
        elif cfg.receipt_delay <= 0:
            session.respond_submit(event.sequence, S.ESME_ROK, message_id)
            deliverer.send_now(receipt, now)
        else:
            session.respond_submit(event.sequence, S.ESME_ROK, message_id)
            deliverer.send_later(cfg.receipt_delay, receipt)
        if cfg.second_receipt:
            contradiction = self._receipt(conn, pdu, number, cfg.second_receipt)
            deliverer.send_later(cfg.receipt_delay + 0.2, contradiction)

    def _receipt(self, conn: SmscConnection, pdu: Pdu, number: int, stat: str) -> Delivery:
        short = pdu.get_bytes("short_message") or pdu.tlv(TAG_MESSAGE_PAYLOAD) or b""
        fields, tlvs = receipt_fields(
            receipt_id=format_id(number, self._receipt_id_format),
            stat=stat,
            submit_date=submit_date(),
            source=pdu.get_bytes("source_addr"),
            dest=pdu.get_bytes("destination_addr"),
            text=preview(short, pdu.get_int("esm_class"), pdu.get_int("data_coding")),
            with_tlvs=self.config.receipt_tlvs,
            tlv_id=format_id(number, self.config.id_format) if self.config.tlv_submit_id else None,
        )
        return Delivery("receipt", conn.system_id, fields, tlvs, prefer=conn)

    def _record(
        self, conn: SmscConnection, event: ev.SubmitReceived, message_id: str, now: float
    ) -> ReceivedSubmit:
        pdu = event.pdu
        dest = pdu.get_str("destination_addr")
        if not dest and pdu.dests():
            dest = pdu.dests()[0].address.decode("latin-1")
        body = pdu.get_bytes("short_message") or pdu.tlv(TAG_MESSAGE_PAYLOAD) or b""
        return ReceivedSubmit(
            source=pdu.get_str("source_addr"),
            dest=dest,
            data_coding=pdu.get_int("data_coding"),
            esm_class=pdu.get_int("esm_class"),
            registered_delivery=pdu.get_int("registered_delivery"),
            short_message=body,
            tlvs=pdu.tlvs,
            message_id=message_id,
            received_at=now,
            bind_id=conn.bind_id,
            system_id=conn.system_id,
            bind_mode=conn.session.bind_mode,
        )

    # ------------------------------------------------------------ timers
    def _tick(self) -> None:
        now = self._now()
        for conn in list(self._conns):
            self._handle(conn, conn.session.tick(now), now)
        self._flush(list(self._conns))
        assert self._loop is not None
        self._timers[0] = self._loop.call_later(TICK_INTERVAL, self._tick)

    def _generate_mo(self) -> None:
        self._mo_credit += self.config.mo_rate * MO_INTERVAL
        while self._mo_credit >= 1:
            self._mo_credit -= 1
            n = next(self._mo_counter)
            self.send_mo(f"44{7000000000 + n % 1000000000}", "12345", f"MO message {n}")
        assert self._loop is not None
        self._timers[1] = self._loop.call_later(MO_INTERVAL, self._generate_mo)
