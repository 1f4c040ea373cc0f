"""A live progress line (rich) fed from a timer, never from the per-message path."""

from __future__ import annotations

import asyncio
import sys

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.loadgen.config import LoadConfig
from benchmarks.loadgen.results import Recorder

REFRESH = 0.25


class ProgressView:
    """Shows sent/accepted/receipts; the bar runs over --count or --duration."""

    def __init__(self, config: LoadConfig, recorder: Recorder, *, enabled: bool) -> None:
        self._rec = recorder
        self._config = config
        self._progress: Progress | None = None
        self._handle: asyncio.TimerHandle | None = None
        if not enabled:
            return
        self._progress = Progress(
            TextColumn("[bold]loadgen"),
            BarColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=Console(file=sys.stderr),
            refresh_per_second=4,
        )
        total = config.message_limit or config.duration
        self._task = self._progress.add_task("", total=total)
        self._loop = asyncio.get_running_loop()
        self._start = self._loop.time()
        self._progress.start()
        self._schedule()

    def _schedule(self) -> None:
        self._handle = self._loop.call_later(REFRESH, self._on_timer)

    def _on_timer(self) -> None:
        self.update()
        self._schedule()

    def update(self) -> None:
        if self._progress is None:
            return
        rec = self._rec
        elapsed = max(self._loop.time() - self._start, 1e-9)
        done: float = (
            elapsed if self._config.message_limit is None else float(rec.sent)
        )  # submits vs messages differ only with multipart; close enough for a bar
        text = (
            f"sent {rec.sent} acc {rec.accepted} ({rec.accepted / elapsed:,.0f}/s) "
            f"thr {rec.throttled} rej {rec.rejected} rcpt {len(rec.matched)}"
        )
        self._progress.update(self._task, completed=done, description=text)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        if self._progress is not None:
            self.update()
            self._progress.stop()
