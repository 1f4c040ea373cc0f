"""The shipped Prometheus configuration and Grafana dashboard are well-formed and complete."""

from __future__ import annotations

import json

from smsgw.cluster.prometheus import (
    DASHBOARD,
    dashboard_queries,
    ray_metrics_targets,
    scrape_config,
)


def test_scrape_config_targets_the_given_endpoints() -> None:
    config = scrape_config(["10.0.0.1:9477", "10.0.0.2:9477"], scrape_interval_s=1)
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "smsgw")
    assert job["static_configs"] == [{"targets": ["10.0.0.1:9477", "10.0.0.2:9477"]}]
    assert config["global"]["scrape_interval"] == "1000ms"
    assert scrape_config([])["global"]["scrape_interval"] == "5s"


def test_targets_are_the_live_nodes_metrics_ports() -> None:
    nodes = [
        {"Alive": True, "NodeManagerAddress": "10.0.0.2", "MetricsExportPort": 9477},
        {"Alive": False, "NodeManagerAddress": "10.0.0.3", "MetricsExportPort": 9477},
        {"Alive": True, "NodeManagerAddress": "10.0.0.1", "MetricsExportPort": 9478},
    ]
    assert ray_metrics_targets(nodes) == ["10.0.0.1:9478", "10.0.0.2:9477"]
    # This machine's node is scraped where the runtime file says (loopback).
    head = {
        "Alive": True,
        "NodeManagerAddress": "192.0.2.9",
        "MetricsExportPort": 9477,
        "Resources": {"node:__internal_head__": 1.0, "CPU": 2.0},
    }
    here = [head]
    assert ray_metrics_targets(here + nodes, "127.0.0.1:9477") == [
        "10.0.0.1:9478",
        "10.0.0.2:9477",
        "127.0.0.1:9477",
    ]


def test_dashboard_covers_what_an_sre_asks_for() -> None:
    exprs = " ".join(e for _t, e in dashboard_queries())
    for metric in (
        "submits_accepted_total",
        "provider_accepted_total",
        "accept_latency_ms_bucket",
        "e2e_latency_ms_bucket",
        "submits_rejected_total",
        "provider_errors_total",
        "consumer_lag",
        "provider_bound",
        "customer_binds",
        "deliveries_expired_total",
        "multipart_expired_total",
        "dead_letters_total",
    ):
        assert f"ray_smsgw_{metric}" in exprs, metric
    board = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_queries_are_found_in_nested_rows() -> None:
    board = {
        "panels": [
            {"title": "a", "targets": [{"expr": "up"}]},
            {"type": "row", "panels": [{"title": "b", "targets": [{"expr": "x"}, {}]}]},
        ]
    }
    assert dashboard_queries(board) == [("a", "up"), ("b", "x")]
