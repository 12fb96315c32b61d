"""A real Prometheus (Debian) loads the rules, evaluates them and runs every dashboard query."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_k8s.k8s_support import (
    PrometheusServer,
    dashboard_queries,
    grafana_to_promql,
    load_dashboards,
    rule_groups,
    start_prometheus,
    wait_for_rule_evaluation,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prometheus(
    debian_prometheus: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """Prometheus with the SonoBridge rules, scraping only itself."""
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    yield from start_prometheus(debian_prometheus[1], workdir, scrape_configs=[])


def test_prometheus_loads_and_evaluates_every_rule_healthily(prometheus: PrometheusServer) -> None:
    rules = wait_for_rule_evaluation(prometheus)
    expected = {rule["alert"] for group in rule_groups() for rule in group["rules"]}
    assert {rule["name"] for rule in rules} == expected
    unhealthy = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not unhealthy


def test_prometheus_runs_every_dashboard_query(prometheus: PrometheusServer) -> None:
    failures = []
    count = 0
    for file, dashboard in load_dashboards().items():
        for where, expr in dashboard_queries(dashboard):
            count += 1
            answer = prometheus.api("query", query=grafana_to_promql(expr))
            if answer["status"] != "success":
                failures.append(f"{file} {where}: {answer.get('error')}")
    assert count > 40
    assert not failures, "\n".join(failures)


def test_prometheus_rejects_a_broken_query(prometheus: PrometheusServer) -> None:
    # The check above means something only if a malformed query is reported as one.
    answer = prometheus.api("query", query="sum by (le (rate(x[5m]))")
    assert answer["status"] == "error" and answer["errorType"] == "bad_data"
