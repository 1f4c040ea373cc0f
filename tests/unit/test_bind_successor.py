"""A provider bind replaced under the same key starts only once its predecessor ended.

Both join the provider's consumer group under the bind's static id (KIP-345): a
successor started while the old bind still drained fenced it, the old bind's
commit failed, and the successor sent again what the old one had sent since its
last commit (test_bind_rebalance: 1,176 duplicates over bind counts 1-2-3-1-2).
``ProviderBind`` is replaced by a stand-in that logs when each run starts and
ends; Kafka is not reached (topic creation is stubbed).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from smsgw.db.providers import Provider
from smsgw.node import binds as binds_module
from smsgw.node.binds import BindHost
from smsgw.settings import Settings
from smsgw.topics import Topics
from tests.helpers.providers import provider_row


def _provider(binds: int) -> Provider:
    return provider_row("p", binds=binds)


@dataclasses.dataclass
class _Config:
    providers: dict[str, Provider]


class _Bind:
    """A bind whose stop takes as long as its test says (a drain, an unbind, a close)."""

    events: list[str] = []
    logged = asyncio.Event()  # set at each event
    stop_takes_s = 0.0

    @staticmethod
    def log(event: str) -> None:
        _Bind.events.append(event)
        _Bind.logged.set()

    def __init__(self, provider: Provider, index: int, **_kw: Any) -> None:
        self.name = f"{provider.binds}#{index}"
        self.stats = object()
        self.tps_share = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        _Bind.log(f"start {self.name}")
        await stop.wait()
        await asyncio.sleep(_Bind.stop_takes_s)
        _Bind.log(f"end {self.name}")


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> BindHost:
    monkeypatch.setattr(binds_module, "ProviderBind", _Bind)
    monkeypatch.setattr(binds_module, "ensure_topic_names", lambda *_a: None)
    _Bind.events = []
    _Bind.logged = asyncio.Event()
    _Bind.stop_takes_s = 0.3
    config = _Config({"p": _provider(1)})
    return BindHost(
        Settings(kafka_bootstrap="127.0.0.1:1"),
        Topics("t."),
        config,  # type: ignore[arg-type]
        producer=None,  # type: ignore[arg-type]
    )


async def _until(what: str, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            _Bind.logged.clear()
            if what in _Bind.events:
                return
            await _Bind.logged.wait()


async def test_a_changed_providers_binds_start_after_the_old_ones_ended(host: BindHost) -> None:
    await host.reconcile()
    await _until("start 1#0")
    host.config.providers["p"] = _provider(2)  # the bind count changed: every bind anew
    await host.reconcile()
    await _until("start 2#1")  # a new key: nothing to wait for
    await _until("start 2#0")
    before = _Bind.events[: _Bind.events.index("start 2#0")]
    assert "end 1#0" in before, _Bind.events  # old code: start 2#0 while 1#0 drained
    await host.stop()
    assert {"end 2#0", "end 2#1"} <= set(_Bind.events)


async def test_a_successor_waits_no_longer_than_the_stop_grace(host: BindHost) -> None:
    """A predecessor that never ends is cancelled past its grace; then its successor runs."""
    host.stop_grace_s = 0.2
    _Bind.stop_takes_s = 60.0
    await host.reconcile()
    await _until("start 1#0")
    host.config.providers["p"] = _provider(2)
    await host.reconcile()
    await _until("start 2#0")
    assert "end 1#0" not in _Bind.events  # cancelled, not ended
    _Bind.stop_takes_s = 0.0
    await host.stop()
