"""LoadConfig: one load run, as the CLI flags describe it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

BindModeName = Literal["trx", "tx+rx"]
ENCODINGS = ("gsm", "ucs2")


@dataclass(frozen=True)
class LoadConfig:
    """Rates count submit_sm PDUs (what an SMSC's TPS counts), not messages.

    `count` counts messages (a multipart message is several submits). With
    neither `count` nor `duration`, 1000 messages are sent.
    """

    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = "smsc"
    password: str = "pw"
    binds: int = 1  # trx: N transceivers; tx+rx: N transmitters and N receivers
    bind_mode: BindModeName = "trx"
    window: int = 10  # outstanding submits per transmitting bind
    rate: float = 0.0  # submit_sm per second over all binds; 0 = open throttle
    # Step load: ((seconds, rate), ...) one after another, instead of `rate`;
    # sending stops after the last step unless `duration`/`count` stop it sooner.
    rate_steps: tuple[tuple[float, float], ...] = ()
    duration: float | None = None
    count: int | None = None
    mix: Mapping[str, float] = field(default_factory=lambda: {"gsm": 1.0})
    multipart_share: float = 0.0
    registered_delivery: int = 1
    receipt_all_parts: bool = False  # False: only part 1 asks (what Kannel does)
    receipt_timeout: float = 10.0  # after the last submit
    response_timeout: float = 10.0
    enquire_link_interval: float = 30.0
    source: str = "12345"
    dest_prefix: str = "4477"
    seed: int | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        if self.bind_mode not in ("trx", "tx+rx"):
            raise ValueError(f"bind_mode must be trx or tx+rx, not {self.bind_mode!r}")
        unknown = set(self.mix) - set(ENCODINGS)
        if unknown or not self.mix or sum(self.mix.values()) <= 0:
            raise ValueError(f"mix needs positive weights for {ENCODINGS}, got {dict(self.mix)}")
        if not 0.0 <= self.multipart_share <= 1.0:
            raise ValueError("multipart_share must be within 0..1")
        if self.binds < 1 or self.window < 1 or self.rate < 0:
            raise ValueError("binds and window must be >= 1, rate >= 0")
        if any(secs <= 0 or rate <= 0 for secs, rate in self.rate_steps):
            raise ValueError("rate steps need seconds > 0 and rate > 0")

    @property
    def message_limit(self) -> int | None:
        if self.count is None and self.duration is None and not self.rate_steps:
            return 1000
        return self.count

    @property
    def send_duration(self) -> float | None:
        """Seconds of sending: `duration`, else the length of the rate steps."""
        steps = sum(secs for secs, _ in self.rate_steps) if self.rate_steps else None
        if self.duration is None:
            return steps
        return self.duration if steps is None else min(self.duration, steps)

    @property
    def rate_limited(self) -> bool:
        return bool(self.rate or self.rate_steps)

    def rate_at(self, elapsed: float) -> float:
        """The offered rate `elapsed` seconds after the start (the last step holds on)."""
        if not self.rate_steps:
            return self.rate
        end = 0.0
        for secs, rate in self.rate_steps:
            end += secs
            if elapsed < end:
                return rate
        return self.rate_steps[-1][1]

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k != "password"}
        out["mix"] = dict(self.mix)
        return out


def parse_steps(text: str) -> tuple[tuple[float, float], ...]:
    """`"250:10,500:10"` (rate:seconds) -> ((10.0, 250.0), (10.0, 500.0))."""
    steps: list[tuple[float, float]] = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        rate, sep, secs = item.partition(":")
        if not sep:
            raise ValueError(f"rate step {item!r} is not RATE:SECONDS")
        steps.append((float(secs), float(rate)))
    return tuple(steps)


def parse_mix(text: str) -> dict[str, float]:
    """`"gsm=0.8,ucs2=0.2"` -> {"gsm": 0.8, "ucs2": 0.2}."""
    mix: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, weight = item.replace(":", "=").partition("=")
        mix[name.strip().lower()] = float(weight) if sep else 1.0
    return mix
