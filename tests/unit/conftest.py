"""The unit tier: no Kafka, PostgreSQL or Ray (issue 13; tests/helpers/unit_guard.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.unit_guard import refuse_infrastructure


@pytest.fixture(autouse=True)
def _no_infrastructure() -> Iterator[None]:
    """Every unit test runs with the infrastructure clients refusing to start."""
    with pytest.MonkeyPatch.context() as mp:
        refuse_infrastructure(mp)
        yield
