"""Alerts and dashboards use only metrics from docs/metrics.md, and the name extractor is sound."""

from __future__ import annotations

import pytest
from deploy_k8s.k8s_support import (
    PROMETHEUS_SERIES,
    catalogue,
    dashboard_queries,
    load_dashboards,
    metric_names,
    referenced_names,
    rule_expressions,
    series_names,
)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.95, sum by (le, model) (rate(a_bucket{stage="total"}[5m]))) > 5',
            {"a_bucket"},
        ),
        (
            "sum(rate(a_total[5m])) by (job) / on (job) group_left (team) b_info",
            {"a_total", "b_info"},
        ),
        ('max by (topic) (a) > 1000 or max by (topic) (b{x=~"by|on"}) > 10', {"a", "b"}),
        ('{__name__="a_total", job="x"} offset 5m', {"a_total"}),
        ('count_values("version", build_info) unless ignoring (instance) c', {"build_info", "c"}),
        ('label_replace(up, "host", "$1", "instance", "(.*):.*") == bool 0', {"up"}),
        ("sum without (pod) (rate(a_total[$__rate_interval])) / ($__range_s / 86400)", {"a_total"}),
        ('a{namespace=~"$namespace"} and topk(3, b)', {"a", "b"}),
    ],
)
def test_metric_names_finds_exactly_the_selected_metrics(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_metric_names_refuses_a_metric_chosen_by_regex() -> None:
    with pytest.raises(ValueError, match="__name__"):
        metric_names('{__name__=~"sonobridge_.+_total"}')


def test_catalogue_lists_every_service_metric_and_type() -> None:
    metrics = catalogue()
    assert metrics["sonobridge_maintenance_dependency_up"] == "gauge"
    assert metrics["sonobridge_inference_model_latency_seconds"] == "histogram"
    assert metrics["sonobridge_ingest_uploads_total"] == "counter"
    assert {f"sonobridge_{s}_http_requests_total" for s in ("ingest", "reporting")} <= set(metrics)
    assert all(name.startswith("sonobridge_") for name in metrics)


def test_every_metric_in_rules_and_dashboards_is_in_the_catalogue() -> None:
    allowed = set(series_names(catalogue())) | PROMETHEUS_SERIES
    unknown = {
        name: sorted(uses) for name, uses in referenced_names().items() if name not in allowed
    }
    assert not unknown, f"metrics missing from docs/metrics.md: {unknown}"


def test_rules_and_dashboards_reference_metrics_of_every_service() -> None:
    used = set(referenced_names())
    for service in ("ingest", "inference", "reporting", "maintenance"):
        assert any(name.startswith(f"sonobridge_{service}_") for name in used), service


def test_every_rule_and_dashboard_query_selects_some_metric() -> None:
    # An expression with no metric (a typo turned into a number, say) would pass the name check.
    empty = [name for name, expr in rule_expressions() if not metric_names(expr)]
    for file, dashboard in load_dashboards().items():
        empty += [f"{file} {where}" for where, expr in dashboard_queries(dashboard)
                  if not metric_names(expr)]  # fmt: skip
    assert not empty
