"""run_load(): bind, offer load, wait for answers and receipts, summarise.

No task per message: with an open throttle every submit_sm_resp batch
refills that bind's window from inside data_received (one write per batch);
with a rate, one 5-ms timer adds tokens to a bucket and tops the windows up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

from benchmarks.loadgen.client import EsmeConnection, connect
from benchmarks.loadgen.config import LoadConfig
from benchmarks.loadgen.messages import MessageSource
from benchmarks.loadgen.progress import ProgressView
from benchmarks.loadgen.results import LoadResult, Recorder, percentiles
from smsgw.smpp import BindMode, Pdu

RATE_TICK = 0.005
BURST_SECONDS = 0.02  # tokens never pile up beyond this much sending time
SESSION_TICK = 1.0
POLL_INTERVAL = 0.01


class LoadRunner:
    """One run; its Handler methods are called by the connections."""

    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.recorder = Recorder()
        self.source = MessageSource(
            mix=config.mix,
            multipart_share=config.multipart_share,
            registered_delivery=config.registered_delivery,
            receipt_all_parts=config.receipt_all_parts,
            source=config.source,
            dest_prefix=config.dest_prefix,
            limit=config.message_limit,
            seed=config.seed,
        )
        self._loop = asyncio.get_running_loop()
        self._conns: list[EsmeConnection] = []
        self._senders: list[EsmeConnection] = []
        self._sending = False
        self._send_done: asyncio.Future[None] = self._loop.create_future()
        self._t_end = float("inf")
        self._tokens = 0.0
        self._last_refill = 0.0
        self._start = 0.0
        self._rotate = 0
        self._timers: dict[str, asyncio.TimerHandle] = {}  # one live handle per purpose

    # ------------------------------------------------------------ Handler
    def on_submit_resp(
        self, status: int, message_id: str, sent_at: float, wants_receipt: bool, now: float
    ) -> None:
        self.recorder.on_resp(status, message_id, sent_at, wants_receipt, now)

    def on_submit_lost(self, sent_at: float, now: float) -> None:
        self.recorder.timeouts += 1

    def on_deliver(self, pdu: Pdu, now: float) -> None:
        self.recorder.on_deliver(pdu, now)

    def on_input_done(self, conn: EsmeConnection, now: float) -> None:
        if self._sending and conn.can_submit:
            self._fill(conn, now)

    # ------------------------------------------------------------ sending
    def _fill(self, conn: EsmeConnection, now: float) -> None:
        """Top up one bind's window (and the token budget, if rate-limited)."""
        ending = now >= self._t_end
        if ending and not self.source.mid_message:
            self._finish_sending()
            return
        room = conn.room
        if self.config.rate_limited:
            room = min(room, int(self._tokens))
        if room <= 0 or conn.session.closed:
            return
        source, rec = self.source, self.recorder
        sent = 0
        while sent < room:
            if ending and not source.mid_message:
                self._finish_sending()  # the message in progress is complete: stop here
                break
            part = source.next_part()
            if part is None:
                self._finish_sending()
                break
            conn.submit(part.fields, now, part.wants_receipt)
            sent += 1
        if sent:
            rec.sent += sent
            rec.per_second_sent[int(now - rec.t0)] += sent
            rec.last_submit = now
            self._tokens -= sent

    def _on_rate_tick(self) -> None:
        now = self._loop.time()
        rate = self.config.rate_at(now - self._start)
        burst = max(1.0, rate * BURST_SECONDS)
        self._tokens = min(burst, self._tokens + (now - self._last_refill) * rate)
        self._last_refill = now
        for conn in self._rotated():
            if not self._sending or self._tokens < 1:
                break
            self._fill(conn, now)
            conn.flush()
        if self._sending:
            self._timers["rate"] = self._loop.call_later(RATE_TICK, self._on_rate_tick)

    def _rotated(self) -> Iterator[EsmeConnection]:
        self._rotate += 1
        n = len(self._senders)
        for i in range(n):
            yield self._senders[(self._rotate + i) % n]

    def _end_of_time(self) -> None:
        """The duration is over: stop now, or once the multipart message under way is whole."""
        if not self.source.mid_message:
            self._finish_sending()

    def _finish_sending(self) -> None:
        if self._sending:
            self._sending = False
            if not self._send_done.done():
                self._send_done.set_result(None)

    def _on_session_tick(self) -> None:
        now = self._loop.time()
        for conn in self._conns:
            conn.tick(now)
        self._timers["session"] = self._loop.call_later(SESSION_TICK, self._on_session_tick)

    # ------------------------------------------------------------ phases
    async def _bind_all(self) -> None:
        cfg = self.config
        modes = [BindMode.TRX] if cfg.bind_mode == "trx" else [BindMode.TX, BindMode.RX]
        jobs = [
            connect(
                cfg.host,
                cfg.port,
                mode,
                cfg.system_id,
                cfg.password,
                handler=self,
                window=cfg.window,
                enquire_link_interval=cfg.enquire_link_interval,
                response_timeout=cfg.response_timeout,
            )
            for _ in range(cfg.binds)
            for mode in modes
        ]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        self._conns = [r for r in results if isinstance(r, EsmeConnection)]
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self._unbind_all()
            raise errors[0]
        self._senders = [c for c in self._conns if c.can_submit]

    async def _unbind_all(self) -> None:
        await asyncio.gather(*(c.unbind() for c in self._conns), return_exceptions=True)

    async def run(self) -> LoadResult:
        cfg, rec = self.config, self.recorder
        await self._bind_all()
        view = ProgressView(cfg, rec, enabled=cfg.progress)
        try:
            start = self._loop.time()
            rec.t0 = rec.first_submit = self._last_refill = self._start = start
            t0_unix = time.time()
            if cfg.send_duration is not None:
                self._t_end = start + cfg.send_duration
                self._timers["end"] = self._loop.call_at(self._t_end, self._end_of_time)
            self._timers["session"] = self._loop.call_later(SESSION_TICK, self._on_session_tick)
            self._sending = True
            if cfg.rate_limited:
                self._tokens = 1.0
                self._on_rate_tick()
            else:
                for conn in self._senders:
                    self._fill(conn, start)
                    conn.flush()
            await self._send_done
            send_end = self._loop.time()
            # answers still in flight, then receipts
            await _poll(
                lambda: not any(c.inflight for c in self._conns),
                send_end + cfg.response_timeout + 1.0,
                self._loop,
                view,
            )
            if cfg.registered_delivery & 3 == 1:
                await _poll(
                    lambda: not rec.awaiting and not rec.early,
                    send_end + cfg.receipt_timeout,
                    self._loop,
                    view,
                )
            elif cfg.registered_delivery & 3:
                await _poll(lambda: False, send_end + cfg.receipt_timeout, self._loop, view)
        finally:
            for timer in self._timers.values():
                timer.cancel()
            view.close()
            await self._unbind_all()
        return self._result(send_end - start, t0_unix)

    def _result(self, send_seconds: float, t0_unix: float) -> LoadResult:
        cfg, rec = self.config, self.recorder
        always = cfg.registered_delivery & 3 == 1
        busy = max(rec.last_resp - rec.first_submit, 1e-9)
        return LoadResult(
            config=cfg.to_dict(),
            messages=self.source.messages,
            submits=rec.sent,
            accepted=rec.accepted,
            throttled=rec.throttled,
            rejected=rec.rejected,
            rejected_by_status={f"0x{k:02X}": v for k, v in sorted(rec.statuses.items())},
            timeouts=rec.timeouts,
            send_seconds=round(send_seconds, 3),
            offered_rate=round(rec.sent / send_seconds, 1) if send_seconds > 0 else 0.0,
            accepted_per_s=round(rec.accepted / busy, 1) if rec.accepted else 0.0,
            receipts=rec.receipts,
            receipts_expected=len(rec.matched) + len(rec.awaiting) if always else None,
            receipts_matched=len(rec.matched),
            receipts_missing=len(rec.awaiting) if always else None,
            receipts_duplicate=rec.duplicates,
            receipts_unmatched=len(rec.early),
            receipt_stats=dict(rec.receipt_stats),
            mo_received=rec.mo_received,
            submit_resp_latency_ms=percentiles(rec.resp_ms),
            receipt_latency_ms=percentiles(rec.receipt_ms),
            per_second_accepted=dict(sorted(rec.per_second_accepted.items())),
            t0_unix=round(t0_unix, 3),
            per_second=rec.per_second(),
        )


async def _poll(
    predicate: Callable[[], bool],
    deadline: float,
    loop: asyncio.AbstractEventLoop,
    view: ProgressView,
) -> None:
    """Wait until `predicate()` or `deadline` (loop time); not on the hot path."""
    while not predicate() and loop.time() < deadline:
        await asyncio.sleep(POLL_INTERVAL)
        view.update()


async def run_load(config: LoadConfig) -> LoadResult:
    """Run one load test in the current event loop (library entry point)."""
    return await LoadRunner(config).run()
