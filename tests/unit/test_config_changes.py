"""`configuration reloaded` says what changed (it used to say only a version number)."""

from __future__ import annotations

from dataclasses import dataclass

from smsgw.db.watch import changes


@dataclass(frozen=True)
class Row:
    tps: int
    password: str
    enabled: bool = True


def test_added_removed_and_changed_fields_by_name_never_values() -> None:
    old = {"a": Row(10, "old-secret"), "gone": Row(1, "x")}
    new = {"a": Row(20, "new-secret", enabled=False), "b": Row(5, "y")}
    got = changes("provider", old, new)
    assert got == [
        "provider b added",
        "provider gone removed",
        "provider a changed (enabled, password, tps)",
    ]
    assert not any("secret" in line for line in got)


def test_nothing_changed() -> None:
    assert changes("route", {1: Row(1, "p")}, {1: Row(1, "p")}) == []
