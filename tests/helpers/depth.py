"""How hard the property tests look: the example counts of the loaded hypothesis profile.

Each property test states its count at full depth (``examples(1500)``); the
profile scales every one alike, and a test without a count of its own gets
the profile's ``max_examples`` itself (hypothesis's default is 100, the full
depth). The profiles are registered in tests/conftest.py:

- ``unit`` (``make unit``, a developer's loop): a quarter of each count;
- ``full`` (``make test``, ``.ci/run``, and any run without
  ``--hypothesis-profile``): the counts as written;
- ``deep`` (``make test-deep``, nightly): ten times each count.
"""

from __future__ import annotations

from hypothesis import settings

FULL = 100  # hypothesis's own default max_examples: the counts as written


def examples(full: int) -> int:
    """``full`` scaled to the loaded profile (at least 10, so no test is a token one).

    Called where the test's ``settings`` are made, i.e. at import, after the
    profile was loaded (``--hypothesis-profile`` applies at pytest_configure).
    """
    loaded = settings.default
    scale = (loaded.max_examples if loaded is not None else FULL) / FULL
    return max(10, round(full * scale))
