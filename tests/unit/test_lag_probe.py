"""The lag probe runs beside the supervisor's loop: a slow measurement holds up nothing."""

from __future__ import annotations

import threading
import time

from smsgw.kafka.lag import LagProbe


def _until(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_slow_measurement_is_not_waited_for_and_lands_when_done() -> None:
    """``committed()`` can block for its timeout while a coordinator loads or moves
    (a supervisor whose reconcile waited on it left binds unplaced for minutes)."""
    release, entered = threading.Event(), threading.Event()
    asked: list[dict[str, str]] = []

    def measure(groups: dict[str, str]) -> dict[str, int]:
        asked.append(groups)
        entered.set()
        release.wait(30)
        return {t: 7 for t in groups.values()}

    probe = LagProbe(measure, interval=0.05)
    probe.groups = {"g": "submit"}
    probe.start()
    try:
        assert entered.wait(10)
        t0 = time.monotonic()
        for _ in range(100):  # what the supervisor's loop does each pass
            probe.groups = {"g": "submit", "h": "out.p1"}
            assert (probe.version, probe.latest) == (0, {})
        # Never waits for the measurement under way (30 s); 5 s, not 0.5: a machine at
        # load 40-60 stalls a process for tenths of seconds.
        assert time.monotonic() - t0 < 5
        release.set()
        _until(lambda: probe.version >= 1)
        assert probe.latest == {"submit": 7}
        _until(lambda: probe.latest == {"submit": 7, "out.p1": 7})  # the groups set later
    finally:
        release.set()
        probe.stop()


def test_a_failed_measurement_keeps_the_last_answer_and_the_probe_keeps_going() -> None:
    answers: list[object] = [{"submit": 3}, RuntimeError("NOT_COORDINATOR"), {"submit": 1}]
    done = threading.Event()

    def measure(groups: dict[str, str]) -> dict[str, int]:
        answer = answers.pop(0) if answers else None
        if answer is None:
            done.set()
            return {"submit": 1}
        if isinstance(answer, Exception):
            assert probe.latest == {"submit": 3}
            raise answer
        assert isinstance(answer, dict)
        return answer

    probe = LagProbe(measure, interval=0.01)
    probe.groups = {"g": "submit"}
    probe.start()
    try:
        assert done.wait(10)
        assert probe.latest == {"submit": 1} and probe.version >= 2
    finally:
        probe.stop()


def test_nothing_is_measured_without_groups() -> None:
    called = threading.Event()

    def measure(groups: dict[str, str]) -> dict[str, int]:
        called.set()
        return {}

    probe = LagProbe(measure, interval=0.01)
    probe.start()
    try:
        assert not called.wait(0.3)
        probe.groups = {"g": "submit"}
        assert called.wait(10)
    finally:
        probe.stop()
