"""The PrometheusRule passes promtool, and every alert has promtool unit tests that fire it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from deploy_k8s.k8s_support import RULE_TESTS, rule_groups

ALERT_TOPICS = {
    "report SLA breaches": "SonoBridgeReportSLABreached",
    "consumer lag": "SonoBridgeConsumerLagHigh",
    "dead-letter growth": "SonoBridgeDeadLetterGrowth",
    "inference errors": "SonoBridgeInferenceErrorRate",
    "inference latency": "SonoBridgeInferenceLatencyHigh",
    "ticket SLA breaches": "SonoBridgeTicketSLABreached",
    "object store unavailable": "SonoBridgeObjectStoreDown",
    "database unavailable": "SonoBridgeDatabaseDown",
}


def _promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_rules_pass_promtool_check(debian_prometheus: tuple[str, str], rules_dir: Path) -> None:
    done = _promtool(debian_prometheus[0], "check", "rules", "sonobridge.rules.yml", cwd=rules_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in rule_groups())} rules found" in done.stdout


def test_rule_unit_tests_pass_promtool(debian_prometheus: tuple[str, str], rules_dir: Path) -> None:
    tests = sorted(path.name for path in rules_dir.glob("*.test.yml"))
    assert tests
    done = _promtool(debian_prometheus[0], "test", "rules", *tests, cwd=rules_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(tests), done.stdout


def test_promtool_fails_a_unit_test_whose_expectation_is_wrong(
    debian_prometheus: tuple[str, str], rules_dir: Path
) -> None:
    # Proves the unit tests compare what they claim to: one changed annotation must fail.
    original = (rules_dir / "maintenance.test.yml").read_text()
    broken = original.replace('"3 open repair tickets', '"4 open repair tickets')
    assert broken != original
    (rules_dir / "broken.test.yml").write_text(broken)
    done = _promtool(debian_prometheus[0], "test", "rules", "broken.test.yml", cwd=rules_dir)
    assert done.returncode != 0
    assert "SonoBridgeTicketsOpenPastSLA" in done.stdout + done.stderr


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    alerts = {
        rule["alert"] for group in rule_groups() for rule in group["rules"] if "alert" in rule
    }
    fired: set[str] = set()
    for path in RULE_TESTS.glob("*.test.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    assert alerts - fired == set(), "alerts without a firing unit test"
    assert fired <= alerts, "unit tests name alerts that do not exist"


def test_the_issue_s_alert_topics_are_covered() -> None:
    alerts = {
        rule["alert"] for group in rule_groups() for rule in group["rules"] if "alert" in rule
    }
    missing = {topic: name for topic, name in ALERT_TOPICS.items() if name not in alerts}
    assert not missing


def test_every_alert_has_severity_summary_and_description() -> None:
    for group in rule_groups():
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
            assert rule["annotations"]["summary"].strip(), rule["alert"]
            assert rule["annotations"]["description"].strip(), rule["alert"]
