"""Running services export every metric the alerts and dashboards use; real Prometheus scrapes them.

Starts the four services as `python -m sonobridge.<svc>` in the single-node edition (shared
temporary DATA_DIR, free loopback ports), scrapes /metrics, then points a Debian prometheus at
them with the SonoBridge rules loaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_k8s.k8s_support import (
    PROMETHEUS_SERIES,
    SERVICES,
    PrometheusServer,
    catalogue,
    free_port,
    http_get,
    referenced_names,
    rule_groups,
    series_names,
    start_prometheus,
    wait_for,
    wait_for_rule_evaluation,
)
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# prometheus-client writes one family per metric; these are the series names each type yields.
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "summary": ("_sum", "_count", ""),
    "info": ("_info",),
    "unknown": ("",),
}


@dataclass
class RunningService:
    """One service process and where it listens."""

    name: str
    http_port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        """Return the service's HTTP root."""
        return f"http://127.0.0.1:{self.http_port}"

    def log(self) -> str:
        """Return what the service has logged so far."""
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningService]]:
    """The four services in the single-node edition, sharing one data directory."""
    data_dir = tmp_path_factory.mktemp("single-node")
    running: dict[str, RunningService] = {}
    try:
        for service in SERVICES:
            env = {
                **os.environ,
                "EDITION": "single",
                "DATA_DIR": str(data_dir),
                "HTTP__HOST": "127.0.0.1",
                "HTTP__PORT": str(free_port()),
                "GRPC__HOST": "127.0.0.1",
                "GRPC__PORT": str(free_port()),
                "INGEST__DIMSE_HOST": "127.0.0.1",
                "INGEST__DIMSE_PORT": str(free_port()),
                "LOG__LEVEL": "WARNING",
            }
            log_path = data_dir / f"{service}.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", f"sonobridge.{service}"],
                    env=env,
                    cwd=data_dir,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            running[service] = RunningService(service, int(env["HTTP__PORT"]), process, log_path)
        for service in running.values():

            def live(service: RunningService = service) -> bool:
                # Any service dying fails at once rather than after the others' timeouts.
                for other in running.values():
                    if other.process.poll() is not None:
                        pytest.fail(f"{other.name} exited:\n{other.log()}")
                return http_get(f"{service.base_url}/healthz", timeout=2)[0] == 200

            wait_for(live, 90, f"{service.name} /healthz")
        yield running
    finally:
        for service in running.values():
            service.process.terminate()
        for service in running.values():
            try:
                service.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait(timeout=10)


def _exported_series(service: RunningService) -> set[str]:
    status, body = http_get(f"{service.base_url}/metrics")
    assert status == 200, f"{service.name} /metrics answered {status}"
    names: set[str] = set()
    for family in text_string_to_metric_families(body.decode()):
        # Families with labels but no observations yet still print HELP and TYPE: count them.
        names.update(f"{family.name}{suffix}" for suffix in _SUFFIXES[family.type])
        names.update(sample.name for sample in family.samples)
    return names


@pytest.mark.parametrize("service", SERVICES)
def test_service_exports_every_metric_alerts_and_dashboards_use(
    services: dict[str, RunningService], service: str
) -> None:
    exported = _exported_series(services[service])
    used = {n for n in referenced_names() if n.startswith(f"sonobridge_{service}_")}
    assert used, f"nothing references {service}'s metrics"
    assert not used - exported, f"{service} does not export: {sorted(used - exported)}"


@pytest.mark.parametrize("service", SERVICES)
def test_service_exports_its_whole_catalogue(
    services: dict[str, RunningService], service: str
) -> None:
    exported = _exported_series(services[service])
    own = {
        series
        for series, metric in series_names(catalogue()).items()
        if metric.startswith(f"sonobridge_{service}_")
    }
    assert not own - exported, f"docs/metrics.md lists, {service} lacks: {sorted(own - exported)}"


@pytest.fixture(scope="module")
def scraping_prometheus(
    services: dict[str, RunningService],
    debian_prometheus: tuple[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PrometheusServer]:
    """Prometheus scraping the running services, with the SonoBridge rules loaded."""
    scrape_configs = [
        {
            # The same job names the ServiceMonitors give in the cluster.
            "job_name": f"sonobridge-{name}",
            "metrics_path": "/metrics",
            "static_configs": [{"targets": [f"127.0.0.1:{service.http_port}"]}],
        }
        for name, service in services.items()
    ]
    workdir = tmp_path_factory.mktemp("prometheus-live")
    yield from start_prometheus(debian_prometheus[1], workdir, scrape_configs)


def test_prometheus_scrapes_every_service_and_evaluates_the_rules(
    scraping_prometheus: PrometheusServer,
) -> None:
    def all_up() -> bool:
        targets = scraping_prometheus.api("targets")["data"]["activeTargets"]
        return len(targets) == len(SERVICES) and all(t["health"] == "up" for t in targets)

    wait_for(all_up, 60, "every service target to be up")
    # Rules evaluated after the first scrapes see real series.
    wait_for_rule_evaluation(scraping_prometheus)
    rules = wait_for_rule_evaluation(scraping_prometheus)
    unhealthy = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not unhealthy
    assert {r["name"] for r in rules} == {
        rule["alert"] for group in rule_groups() for rule in group["rules"]
    }
    for name in sorted(referenced_names()):
        if name in PROMETHEUS_SERIES:
            continue
        answer = scraping_prometheus.api("series", **{"match[]": name})
        assert answer["status"] == "success", answer
    up = scraping_prometheus.api("query", query='up{job=~"sonobridge-.+"} == 1')
    assert {r["metric"]["job"] for r in up["data"]["result"]} == {
        f"sonobridge-{s}" for s in SERVICES
    }
    firing = scraping_prometheus.api("alerts")["data"]["alerts"]
    down = [a for a in firing if a["labels"]["alertname"] == "SonoBridgeServiceDown"]
    assert not down
