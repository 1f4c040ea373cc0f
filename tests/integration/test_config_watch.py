"""The configuration watcher stops even with a reload under way (real PostgreSQL)."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from smsgw.db.providers import add_provider
from smsgw.db.watch import ConfigWatcher

pytestmark = [pytest.mark.integration]


async def test_stop_during_a_reload_callback_ends_the_watcher(db_url: str) -> None:
    """A reload callback that never ends (a bind that would not stop, say) is cancelled
    with the watcher. psycopg's notifies() generator, left open by the cancel, held
    its connection's lock, so the connection's exit waited on it for good: the
    stop ran into its timeout and the watcher task stayed pending."""
    watcher = ConfigWatcher(db_url)
    inside = asyncio.Event()

    async def stuck() -> None:
        if watcher.version > 1:  # the reload a notification caused, not the first load
            inside.set()
            await asyncio.Event().wait()

    watcher.on_change(stuck)
    await watcher.start()

    def add() -> None:
        with psycopg.connect(db_url) as conn:
            add_provider(conn, "p", host="127.0.0.1", port=1, system_id="p", password="pw")

    await asyncio.to_thread(add)
    await asyncio.wait_for(inside.wait(), 30)
    began = time.monotonic()
    await watcher.stop(timeout_s=20)
    took = time.monotonic() - began
    assert took < 5, f"the watcher took {took:.1f} s to stop"
