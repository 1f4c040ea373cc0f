"""Prometheus-style metrics on the Ray dashboard, from the workers' own counters.

Workers keep plain cumulative counters (``smsgw`` knows nothing of Ray); once
a second each actor turns their growth into ``ray.util.metrics`` increments,
tagged per customer / provider. Names follow Prometheus conventions and match
``^[a-zA-Z_:][a-zA-Z0-9_:]*$`` (Ray silently drops others).
"""

from __future__ import annotations

from typing import Any

from ray.util.metrics import Counter, Gauge, Histogram

from smsgw.kafka import dlq

LATENCY_BUCKETS_MS: list[float] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]

_COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "smsgw_submits_accepted_total": ("Submits accepted (on Kafka) per customer", ("customer",)),
    "smsgw_submits_rejected_total": (
        "Submits refused, by customer and command_status",
        ("customer", "status"),
    ),
    "smsgw_submits_throttled_total": ("Submits answered ESME_RTHROTTLED", ("customer",)),
    "smsgw_binds_total": ("Bind attempts by customer and outcome", ("customer", "status")),
    "smsgw_connections_refused_total": (
        "Connections closed at once: over the per-IP or total limit",
        ("listener", "reason"),
    ),
    "smsgw_bind_timeouts_total": ("Connections closed unbound at the bind deadline", ("listener",)),
    "smsgw_proxy_header_invalid_total": (
        "Connections from a trusted load balancer closed: no usable PROXY header",
        ("listener",),
    ),
    "smsgw_bind_lockouts_total": ("Bind failures that started a lockout", ("listener",)),
    "smsgw_binds_throttled_total": (
        "Binds refused unchecked: source IP or system_id locked out",
        ("listener", "scope"),
    ),
    "smsgw_log_lines_suppressed_total": (
        "Protocol-error log lines over a connection's budget",
        ("listener",),
    ),
    "smsgw_deliveries_total": ("deliver_sm acknowledged by customers", ("customer", "kind")),
    "smsgw_deliveries_expired_total": ("Receipts/MO whose TTL ran out", ("customer", "kind")),
    "smsgw_deliveries_failed_total": (
        "Receipts/MO the customer refused for good (permanent error or generic_nack)",
        ("customer", "kind"),
    ),
    "smsgw_dead_letters_total": (
        "Undecodable records set aside in the dead-letter topic, by stage and source topic",
        ("stage", "topic"),
    ),
    "smsgw_routed_total": ("Messages routed to a provider", ("router",)),
    "smsgw_no_route_total": ("Messages without a route, per customer", ("router", "customer")),
    "smsgw_multipart_routed_total": ("Multipart messages assembled and routed", ("router",)),
    "smsgw_multipart_expired_total": (
        "Multipart messages whose parts did not all arrive in time (err:904)",
        ("router",),
    ),
    "smsgw_multipart_duplicates_total": ("Duplicate copies of a multipart part", ("router",)),
    "smsgw_provider_submits_total": ("submit_sm sent to providers", ("provider",)),
    "smsgw_provider_accepted_total": ("submit_sm accepted by providers", ("provider",)),
    "smsgw_provider_throttled_total": ("ESME_RTHROTTLED from providers", ("provider",)),
    "smsgw_provider_errors_total": ("Error statuses from providers", ("provider", "status")),
    "smsgw_provider_resent_total": (
        "Submits resent after an unknown outcome (possible duplicates)",
        ("provider",),
    ),
    "smsgw_provider_failover_total": ("Messages handed to a failover provider", ("provider",)),
    "smsgw_receipts_received_total": ("Receipts received from providers", ("provider",)),
    "smsgw_mo_received_total": ("MO received from providers", ("provider",)),
    "smsgw_receipts_matched_total": ("Receipts matched to a gateway id", ("correlator",)),
    "smsgw_receipts_orphaned_total": ("Receipts never matched", ("correlator",)),
    "smsgw_messages_final_total": (
        "Messages that reached a final state, by state and why",
        ("state", "reason"),
    ),
    "smsgw_receipt_outcomes_total": (
        "Provider receipts by outcome (DELIVRD, UNDELIV, EXPIRED...), customer and provider",
        ("customer", "provider", "stat"),
    ),
}
_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "smsgw_customer_binds": ("Open customer binds on this listener", ("customer", "listener")),
    "smsgw_deliveries_waiting": ("Receipts/MO waiting for a receiving bind", ("listener",)),
    "smsgw_provider_bound": ("1 while the provider bind is up", ("provider", "bind")),
    "smsgw_kafka_in_flight": ("Records waiting for Kafka's acknowledgement", ("listener",)),
    "smsgw_multipart_parts_held": ("Parts waiting for the rest of their message", ("router",)),
    "smsgw_consumer_lag": ("Records a stage has not committed yet, per input topic", ("topic",)),
}

_metrics: dict[str, Any] = {}


def _counter(name: str) -> Counter:
    if name not in _metrics:
        desc, tags = _COUNTERS[name]
        _metrics[name] = Counter(name, description=desc, tag_keys=tags)
    metric: Counter = _metrics[name]
    return metric


def _gauge(name: str) -> Gauge:
    if name not in _metrics:
        desc, tags = _GAUGES[name]
        _metrics[name] = Gauge(name, description=desc, tag_keys=tags)
    metric: Gauge = _metrics[name]
    return metric


_HISTOGRAMS = {
    "smsgw_accept_latency_ms": "submit_sm received -> submit_sm_resp (Kafka acknowledged)",
    "smsgw_e2e_latency_ms": "submit accepted -> its receipt acknowledged by the customer",
}


def _histogram(name: str = "smsgw_accept_latency_ms") -> Histogram:
    if name not in _metrics:
        _metrics[name] = Histogram(
            name,
            description=_HISTOGRAMS[name],
            boundaries=LATENCY_BUCKETS_MS,
            tag_keys=("listener",),
        )
    metric: Histogram = _metrics[name]
    return metric


class MetricsExporter:
    """Turns one actor's cumulative counters into metric increments."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name
        self._last: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def _inc(self, metric: str, value: float, **tags: str) -> None:
        key = (metric, tuple(sorted(tags.items())))
        last = self._last.get(key, 0.0)
        delta = value - last if value >= last else value  # a restart reset the counter
        self._last[key] = value
        if delta > 0:
            _counter(metric).inc(delta, tags=tags)

    def export(self, stats: dict[str, Any]) -> None:
        getattr(self, f"_{self.kind}", lambda _s: None)(stats)
        # Every stage of this process writes dead letters through one module counter.
        for (stage, topic), n in list(dlq.dead_lettered.items()):
            self._inc("smsgw_dead_letters_total", n, stage=stage, topic=topic)

    def _finals(self, counts: dict[str, int]) -> None:
        """``"STATE|reason"`` tallies (smsgw.state.count_final) as smsgw_messages_final_total."""
        for key, n in counts.items():
            state, _, reason = key.partition("|")
            self._inc("smsgw_messages_final_total", n, state=state, reason=reason)

    def _listener(self, s: dict[str, Any]) -> None:
        names = {
            "accepted": "smsgw_submits_accepted_total",
            "throttled": "smsgw_submits_throttled_total",
            "delivered": "smsgw_deliveries_total",
            "delivery_expired": "smsgw_deliveries_expired_total",
            "delivery_failed": "smsgw_deliveries_failed_total",
        }
        for event, customer, status, value in s.get("counters", []):
            if event in names:
                tags = {"customer": customer}
                if event in ("delivered", "delivery_expired", "delivery_failed"):
                    tags["kind"] = status
                self._inc(names[event], value, **tags)
            elif event == "rejected":
                self._inc("smsgw_submits_rejected_total", value, customer=customer, status=status)
            elif event == "binds":
                self._inc("smsgw_binds_total", value, customer=customer, status=status)
            elif event == "connections_refused":
                self._inc(
                    "smsgw_connections_refused_total", value, listener=self.name, reason=status
                )
            elif event in (
                "bind_timeouts",
                "bind_lockouts",
                "log_suppressed",
                "proxy_header_invalid",
            ):
                metric = {
                    "bind_timeouts": "smsgw_bind_timeouts_total",
                    "proxy_header_invalid": "smsgw_proxy_header_invalid_total",
                    "bind_lockouts": "smsgw_bind_lockouts_total",
                    "log_suppressed": "smsgw_log_lines_suppressed_total",
                }[event]
                self._inc(metric, value, listener=self.name)
            elif event == "bind_throttled":
                self._inc("smsgw_binds_throttled_total", value, listener=self.name, scope=status)
        for customer, n in s.get("binds", {}).items():
            _gauge("smsgw_customer_binds").set(
                n, tags={"customer": customer, "listener": self.name}
            )
        deliverer = s.get("deliverer") or {}
        _gauge("smsgw_deliveries_waiting").set(
            deliverer.get("waiting", 0), tags={"listener": self.name}
        )
        _gauge("smsgw_kafka_in_flight").set(s.get("in_flight", 0), tags={"listener": self.name})
        hist = _histogram()
        for ms in s.get("accept_latency_ms", []):
            hist.observe(ms, tags={"listener": self.name})
        e2e = _histogram("smsgw_e2e_latency_ms")
        for ms in s.get("e2e_latency_ms", []):
            e2e.observe(ms, tags={"listener": self.name})
        # Measured by the supervisor (one probe for the cluster), published here.
        for topic, n in (s.get("lag") or {}).items():
            _gauge("smsgw_consumer_lag").set(n, tags={"topic": topic})

    def _router(self, s: dict[str, Any]) -> None:
        r = s.get("router", {})
        self._inc("smsgw_routed_total", r.get("routed", 0), router=self.name)
        for customer, n in (s.get("no_route_by_customer") or {}).items():
            self._inc("smsgw_no_route_total", n, router=self.name, customer=customer)
        for what in ("routed", "expired", "duplicates"):
            self._inc(
                f"smsgw_multipart_{what}_total", r.get(f"multipart_{what}", 0), router=self.name
            )
        self._finals(s.get("final") or {})
        _gauge("smsgw_multipart_parts_held").set(
            r.get("multipart_held", 0), tags={"router": self.name}
        )

    def _correlator(self, s: dict[str, Any]) -> None:
        c = s.get("correlator", {})
        self._inc("smsgw_receipts_matched_total", c.get("matched", 0), correlator=self.name)
        self._inc("smsgw_receipts_orphaned_total", c.get("orphans", 0), correlator=self.name)
        self._finals(c.get("final") or {})
        for key, n in (c.get("outcomes") or {}).items():
            customer, provider, stat = key.split("|", 2)
            self._inc(
                "smsgw_receipt_outcomes_total", n, customer=customer, provider=provider, stat=stat
            )

    def _provider(self, s: dict[str, Any]) -> None:
        b, p = s.get("bind", {}), s.get("provider", "")
        self._inc("smsgw_provider_submits_total", b.get("submitted", 0), provider=p)
        self._inc("smsgw_provider_accepted_total", b.get("accepted", 0), provider=p)
        self._inc("smsgw_provider_throttled_total", b.get("throttled", 0), provider=p)
        self._inc("smsgw_provider_resent_total", b.get("resent_unknown", 0), provider=p)
        self._inc("smsgw_provider_failover_total", b.get("failed_over", 0), provider=p)
        self._inc("smsgw_receipts_received_total", b.get("receipts", 0), provider=p)
        self._inc("smsgw_mo_received_total", b.get("mo", 0), provider=p)
        self._finals(b.get("final") or {})
        for status, n in b.get("errors", {}).items():
            self._inc("smsgw_provider_errors_total", n, provider=p, status=status)
        _gauge("smsgw_provider_bound").set(
            1 if b.get("bound") else 0, tags={"provider": p, "bind": self.name}
        )
