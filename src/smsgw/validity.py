"""SMPP time fields (SMPP 3.4 §7.1.1) as instants, and a message's expiry.

A ``validity_period`` is either absolute, ``YYMMDDhhmmsstnnp`` with ``nn``
quarter hours of offset from UTC and ``p`` ``+``/``-``, or relative,
``YYMMDDhhmmss000R`` counted from the moment the SMSC (here: the gateway)
accepted the message. The gateway holds a message no longer than the
earlier of its validity and its maximum age (``SMSGW_MESSAGE_TTL_S`` or the
provider's ``--message-ttl``), and forwards what is left of the validity in
relative form, so the provider never keeps it beyond what the customer asked.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from typing import Final

_FORMAT: Final = re.compile(r"(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d)(\d{2})([+\-R])")
_DAY_S: Final = 86400


class TimeFieldError(ValueError):
    """Not an SMPP 3.4 time: wrong shape or impossible values."""


def _add_months(start: dt.datetime, months: int) -> dt.datetime:
    """Calendar months (the day is clamped: Jan 31 + 1 month is the end of February)."""
    total = start.month - 1 + months
    year, month = start.year + total // 12, total % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def parse_time(value: str, reference: float) -> float | None:
    """The instant (epoch seconds) an SMPP time names; None for the empty (NULL) time.

    ``reference`` is when the message was accepted: the start of a relative time.
    """
    if not value:
        return None
    m = _FORMAT.fullmatch(value)
    if m is None:
        raise TimeFieldError(f"{value!r} is not YYMMDDhhmmsstnnp (SMPP 3.4 §7.1.1)")
    yy, mo, dd, hh, mi, ss, tenths, nn, p = m.groups()
    if p == "R":
        # §7.1.1.2: the "tnn" of a relative time is always 000.
        if tenths != "0" or nn != "00":
            raise TimeFieldError(f"{value!r}: a relative time ends in 000R")
        if int(mo) > 11 or int(hh) > 23 or int(mi) > 59 or int(ss) > 59:
            raise TimeFieldError(f"{value!r}: relative fields out of range")
        start = dt.datetime.fromtimestamp(reference, dt.UTC)
        end = _add_months(start, 12 * int(yy) + int(mo))
        delta = dt.timedelta(days=int(dd), hours=int(hh), minutes=int(mi), seconds=int(ss))
        return (end + delta).timestamp()
    offset_quarters = int(nn)
    if offset_quarters > 48:
        raise TimeFieldError(f"{value!r}: the UTC offset is at most 48 quarter hours")
    try:
        local = dt.datetime(
            2000 + int(yy), int(mo), int(dd), int(hh), int(mi), int(ss), int(tenths) * 100_000
        )
    except ValueError as exc:
        raise TimeFieldError(f"{value!r}: {exc}") from None
    # The time is local time at UTC+offset ('+') or UTC-offset ('-').
    offset = dt.timedelta(minutes=15 * offset_quarters) * (1 if p == "+" else -1)
    return local.replace(tzinfo=dt.timezone(offset)).timestamp()


def relative_time(seconds: float) -> str:
    """``seconds`` from now as a relative SMPP time, rounded down (never promises more).

    Up to 99 days it is exact to the second; beyond, whole 30-day months and
    365-day years stand in for the calendar (still never longer than asked).
    """
    s = max(0, int(seconds))
    days, rest = divmod(s, _DAY_S)
    years = months = 0
    if days > 99:
        years, days = divmod(days, 365)
        months, days = divmod(days, 30)
        years = min(years, 99)
    hh, rest = divmod(rest, 3600)
    mi, ss = divmod(rest, 60)
    return f"{years:02d}{months:02d}{days:02d}{hh:02d}{mi:02d}{ss:02d}000R"


def expires_at(validity_period: str, received_at: float, max_age_s: float) -> float:
    """When the gateway gives up on a message: its validity or its maximum age, earlier wins.

    A validity the gateway cannot read counts as absent (the maximum age applies);
    acceptance already refused the malformed shapes.
    """
    deadline = received_at + max_age_s
    try:
        validity = parse_time(validity_period, received_at)
    except TimeFieldError:
        validity = None
    return deadline if validity is None else min(deadline, validity)
