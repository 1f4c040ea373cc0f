"""Data dirs of the harness (brokers, databases, Ray, ``smsgw run`` homes) under /tmp.

A dir is removed when whoever made it is done with it and no test failed
meanwhile; otherwise it is kept for the post-mortem, and its path is listed at
the end of the run (``kept``). A whole session of them once filled 75 GB.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import pytest

_sessions: list[pytest.Session] = []  # the running one (tests/conftest.py attaches it)
kept: list[Path] = []  # dirs left for a failure's post-mortem, listed at the end


def attach(session: pytest.Session) -> None:
    """The session whose failed tests decide what is kept (tests/conftest.py)."""
    _sessions[:] = [session]


def _failures() -> int:
    return _sessions[0].testsfailed if _sessions else 0


class DataDir:
    """A fresh dir under the system temp dir (not pytest's tmp_path: as root that lives
    under a 0700 dir PostgreSQL's unprivileged user could not enter).

    ``done()`` (or leaving the ``with`` block) removes it unless a test failed since
    it was made, or the block raised: then it stays and its path is printed.
    """

    def __init__(self, name: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=f"smsgw-test-{name}-"))
        self._failures = _failures()
        self._done = False

    def done(self, ok: bool = True) -> None:
        """Remove it (once what ran in it has stopped), or keep it if anything failed."""
        if self._done:
            return
        self._done = True
        if ok and _failures() == self._failures:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        kept.append(self.path)
        print(f"kept {self.path} (a test failed while it was in use)", file=sys.stderr)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.done(ok=exc_type is None)


class TestDirs:
    """The ``data_dir`` fixture: fresh dirs for one test (a broker's, a ``smsgw run``
    home), removed after it unless it failed; ``stop_with`` stops what runs in
    them first, even if the test failed before its own ``finally``."""

    __test__ = False  # not a test class, whatever pytest's naming rules say

    def __init__(self) -> None:
        self._dirs: list[DataDir] = []
        self._stops: list[Callable[[], object]] = []

    def __call__(self, name: str) -> Path:
        d = DataDir(name)
        self._dirs.append(d)
        return d.path

    def stop_with(self, stop: Callable[[], object]) -> None:
        """Call ``stop`` (idempotent, like ``EmbeddedKafka.stop``) when the test is over."""
        self._stops.append(stop)

    def close(self) -> None:
        try:
            for stop in reversed(self._stops):
                stop()
        finally:
            for d in self._dirs:
                d.done()
