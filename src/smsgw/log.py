"""structlog set-up: key=value for people, JSON for log shippers."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Phone numbers are personal data: logs show only their last digits unless the
# operator asks otherwise (SMSGW_LOG_UNMASKED=1; issue 11).
_masking = {"unmasked": os.environ.get("SMSGW_LOG_UNMASKED", "").lower() in ("1", "true", "yes")}
NUMBER_KEYS = frozenset(
    {"dest", "destination", "destination_addr", "source", "source_addr", "msisdn"}
)
KEEP_DIGITS = 3


def mask_number(value: object) -> str:
    """``4917612345678`` -> ``***678``: enough to tell numbers apart in a support case."""
    text = str(value)
    if _masking["unmasked"] or len(text) <= KEEP_DIGITS:
        return text
    return "***" + text[-KEEP_DIGITS:]


def _mask_numbers(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Processor: whatever logs a number under a known key, it leaves masked."""
    for key in NUMBER_KEYS & event.keys():
        event[key] = mask_number(event[key])
    return event


def configure(level: str = "INFO", json: bool = False, *, unmasked: bool | None = None) -> None:
    if unmasked is not None:
        _masking["unmasked"] = unmasked
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _mask_numbers,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def get(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger


MAX_PEER_STRING = 64


def clip(value: str, limit: int = MAX_PEER_STRING) -> str:
    """A peer-supplied string fit for a log line: at most `limit` characters, printable."""
    text = value if value.isprintable() else value.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else f"{text[:limit]}…(+{len(text) - limit})"


class LogBudget:
    """At most ``burst`` lines per ``period_s`` window; the rest are counted, not written.

    For lines a peer can trigger at will (protocol errors): a stream of
    unknown-command PDUs wrote 555,000 warnings (88 MB) in 10 s. Not an
    aiolimiter: this is a synchronous yes/no on a log call, nothing waits.
    """

    def __init__(self, burst: int = 5, period_s: float = 60.0) -> None:
        self.burst = burst
        self.period_s = period_s
        self._window_start = float("-inf")
        self._used = 0
        self.suppressed = 0  # since the last line written
        self.suppressed_total = 0

    def allow(self, now: float) -> bool:
        if now - self._window_start >= self.period_s:
            self._window_start, self._used = now, 0
        if self._used < self.burst:
            self._used += 1
            return True
        self.suppressed += 1
        self.suppressed_total += 1
        return False

    def take_suppressed(self) -> int:
        n, self.suppressed = self.suppressed, 0
        return n
