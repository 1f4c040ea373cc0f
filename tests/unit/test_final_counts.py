"""Final-state tallies behind smsgw_messages_final_total{state, reason}."""

from __future__ import annotations

from smsgw.state import MessageState, count_final


def test_only_final_states_are_counted_by_state_and_reason() -> None:
    counts: dict[str, int] = {}
    count_final(counts, MessageState.EXPIRED, "expired")
    count_final(counts, MessageState.EXPIRED, "expired")
    count_final(counts, MessageState.UNDELIVERABLE, "unknown-outcome", 3)
    count_final(counts, MessageState.ENROUTE, "sent")  # not final: not counted
    count_final(counts, MessageState.ACCEPTED, "receipt")
    assert counts == {"EXPIRED|expired": 2, "UNDELIVERABLE|unknown-outcome": 3}
