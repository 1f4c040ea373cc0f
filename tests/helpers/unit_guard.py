"""The unit tier's guard: real infrastructure clients raise (issue 13).

A unit test runs against pure logic, fakes and the in-memory log
(``tests/helpers/memlog.py``), never against Kafka, PostgreSQL or Ray: one
that quietly constructed a librdkafka client or opened a connection would be
an integration test in disguise (slow, needing a service, passing or failing
for reasons the unit tier cannot see). Within the unit tier (the autouse
fixture in ``tests/unit/conftest.py``) these raise ``InfrastructureRefused``:

- ``confluent_kafka.Producer``, ``Consumer``, ``AdminClient`` (also under the
  names modules bound with ``from confluent_kafka import Producer``, and as a
  default argument of the gateway's functions, ``factory=Producer``);
- ``psycopg.connect``, ``psycopg.Connection.connect``,
  ``psycopg.AsyncConnection.connect`` (and so every subclass and pool);
- ``ray.init`` (also the auto-init behind ``ray.get``/``.remote`` without one).

The patches are a ``MonkeyPatch`` undone after each test, so the other tiers
of the same ``make test`` session see the real classes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any, NoReturn

import confluent_kafka
import confluent_kafka.admin
import psycopg
import pytest
import ray
import ray._private.worker


class InfrastructureRefused(RuntimeError):
    """A unit test reached for Kafka, PostgreSQL or Ray."""


def _refuse(what: str) -> NoReturn:
    raise InfrastructureRefused(
        f"{what} in the unit tier: unit tests run without Kafka, PostgreSQL or Ray "
        "(use a fake or tests/helpers/memlog.py; a test that needs the service "
        "belongs in tests/integration)"
    )


def _refusing_class(real: type, what: str) -> type:
    """A subclass of ``real`` (``isinstance`` and annotations keep working) that
    cannot be constructed."""

    def __new__(cls: type, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(what)

    return type(real.__name__, (real,), {"__new__": __new__, "__module__": real.__module__})


def _refusing_function(what: str) -> Callable[..., NoReturn]:
    def refused(*args: Any, **kwargs: Any) -> NoReturn:
        _refuse(what)

    return refused


# What a test may not construct or call: the real object, and its stand-in.
_CLASSES = {
    confluent_kafka.Producer: "confluent_kafka.Producer",
    confluent_kafka.Consumer: "confluent_kafka.Consumer",
    confluent_kafka.admin.AdminClient: "confluent_kafka.admin.AdminClient",
}
_STAND_INS: dict[object, object] = {
    real: _refusing_class(real, what) for real, what in _CLASSES.items()
}
_STAND_INS[psycopg.connect] = _refusing_function("psycopg.connect")
_RAY_INIT = ray.init
_STAND_INS[_RAY_INIT] = _refusing_function("ray.init")
_GUARDED_IDS = {id(real) for real in _STAND_INS}


def _guarded(value: object) -> bool:
    return id(value) in _GUARDED_IDS and value in _STAND_INS


def _functions(module: ModuleType) -> list[Any]:
    """The functions of ``module`` and the methods of its classes (their own)."""
    found: list[Any] = []
    for value in list(vars(module).values()):
        if getattr(value, "__module__", None) != module.__name__:
            continue
        if isinstance(value, type):
            for member in list(vars(value).values()):
                fn = getattr(member, "__func__", member)  # classmethod, staticmethod
                if hasattr(fn, "__defaults__"):
                    found.append(fn)
        elif hasattr(value, "__defaults__"):
            found.append(value)
    return found


class _Bindings:
    """Where the guarded objects are bound, found once per module.

    ``from confluent_kafka import Consumer`` binds the real class in the importing
    module before any test runs, so patching ``confluent_kafka`` alone would miss
    it, and so does a default argument (``factory=Producer``) of our own code;
    scanning every module for every test would cost seconds over the tier.
    """

    def __init__(self) -> None:
        self.scanned: set[str] = set()
        self.attrs: list[tuple[ModuleType, str, object]] = []
        self.defaults: list[tuple[Any, str, Any]] = []  # (function, attr, its stand-in)

    def update(self) -> None:
        if len(self.scanned) == len(sys.modules):
            return
        for name, module in list(sys.modules.items()):
            if name in self.scanned:
                continue
            self.scanned.add(name)
            if name == __name__ or not isinstance(module, ModuleType):
                continue
            try:
                items = list(vars(module).items())
            except TypeError:
                continue
            self.attrs += [(module, attr, value) for attr, value in items if _guarded(value)]
            if name.split(".")[0] in ("smsgw", "tests"):
                for fn in _functions(module):
                    self._defaults(fn)

    def _defaults(self, fn: Any) -> None:
        defaults = fn.__defaults__ or ()
        if any(_guarded(d) for d in defaults):
            swapped = tuple(_STAND_INS[d] if _guarded(d) else d for d in defaults)
            self.defaults.append((fn, "__defaults__", swapped))
        kwdefaults = fn.__kwdefaults__ or {}
        if any(_guarded(d) for d in kwdefaults.values()):
            swapped_kw = {k: _STAND_INS[d] if _guarded(d) else d for k, d in kwdefaults.items()}
            self.defaults.append((fn, "__kwdefaults__", swapped_kw))


_bindings = _Bindings()


def refuse_infrastructure(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every infrastructure client raise until ``monkeypatch`` is undone."""
    _bindings.update()
    for module, attr, real in _bindings.attrs:
        monkeypatch.setattr(module, attr, _STAND_INS[real])
    for fn, attr, stand_ins in _bindings.defaults:
        monkeypatch.setattr(fn, attr, stand_ins)

    def refused_connect(cls: type, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(f"{cls.__name__}.connect")

    monkeypatch.setattr(psycopg.Connection, "connect", classmethod(refused_connect))
    monkeypatch.setattr(psycopg.AsyncConnection, "connect", classmethod(refused_connect))
    monkeypatch.setattr(ray._private.worker, "init", _STAND_INS[_RAY_INIT])
