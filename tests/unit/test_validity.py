"""SMPP 3.4 §7.1.1 times: relative, absolute with quarter-hour offsets, and invalid ones."""

from __future__ import annotations

import datetime as dt

import pytest

from smsgw.validity import TimeFieldError, expires_at, parse_time, relative_time

T0 = dt.datetime(2026, 1, 31, 12, 0, 0, tzinfo=dt.UTC).timestamp()


def test_empty_is_no_time() -> None:
    assert parse_time("", T0) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("000000000020000R", 20),
        ("000000000003000R", 3),
        ("000001020304000R", 86400 + 2 * 3600 + 3 * 60 + 4),
        ("000000000000000R", 0),
    ],
)
def test_relative(value: str, seconds: int) -> None:
    assert parse_time(value, T0) == T0 + seconds


def test_relative_months_follow_the_calendar() -> None:
    # Jan 31 + 1 month: the end of February, not March 3.
    end = parse_time("000100000000000R", T0)
    assert end == dt.datetime(2026, 2, 28, 12, tzinfo=dt.UTC).timestamp()
    year = dt.datetime(2027, 1, 31, 12, tzinfo=dt.UTC).timestamp()
    assert parse_time("010000000000000R", T0) == year


@pytest.mark.parametrize(
    ("value", "utc"),
    [
        ("260131120000000+", dt.datetime(2026, 1, 31, 12, 0, 0, tzinfo=dt.UTC)),
        # 14:30:05.7 at UTC+2 (8 quarters) is 12:30:05.7 UTC.
        ("260131143005708+", dt.datetime(2026, 1, 31, 12, 30, 5, 700000, tzinfo=dt.UTC)),
        # 07:15 at UTC-4:45 (19 quarters) is 12:00 UTC.
        ("260131071500019-", dt.datetime(2026, 1, 31, 12, 0, 0, tzinfo=dt.UTC)),
        ("261231233000048-", dt.datetime(2027, 1, 1, 11, 30, 0, tzinfo=dt.UTC)),
    ],
)
def test_absolute_with_offsets(value: str, utc: dt.datetime) -> None:
    assert parse_time(value, T0) == pytest.approx(utc.timestamp())


@pytest.mark.parametrize(
    "value",
    [
        "20",  # too short
        "000000000020000X",  # no such direction
        "000000000020100R",  # relative must end in 000R
        "000000006000000R",  # 60 seconds is not a relative seconds field
        "261301120000000+",  # month 13
        "260230120000000+",  # 30 February
        "260131120000049+",  # more than 12 hours of offset
        "26013112000000+",  # one digit short
    ],
)
def test_invalid(value: str) -> None:
    with pytest.raises(TimeFieldError):
        parse_time(value, T0)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "000000000000000R"),
        (-5, "000000000000000R"),
        (17.9, "000000000017000R"),
        (86400 + 3661, "000001010101000R"),
        (99 * 86400, "000099000000000R"),
        (400 * 86400, "010105000000000R"),
    ],
)
def test_relative_time_rounds_down(seconds: float, text: str) -> None:
    assert relative_time(seconds) == text
    assert parse_time(text, T0) <= T0 + max(0, seconds)  # type: ignore[operator]


def test_expiry_is_the_earlier_of_validity_and_max_age() -> None:
    assert expires_at("", T0, 600) == T0 + 600
    assert expires_at("000000000020000R", T0, 600) == T0 + 20
    assert expires_at("000001000000000R", T0, 600) == T0 + 600
    assert expires_at("garbage", T0, 600) == T0 + 600
