"""Helpers for the deploy checks: rendering, rule extraction, a real Prometheus, PromQL names."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S = REPO_ROOT / "deploy" / "k8s"
OVERLAYS = ("county", "prefecture")
EXAMPLES = ("strimzi", "minio-tenant")
SERVICES = ("ingest", "inference", "reporting", "maintenance")
RULE_TESTS = Path(__file__).resolve().parent / "rules"
DASHBOARDS = K8S / "monitoring" / "dashboards"
CATALOGUE = REPO_ROOT / "docs" / "metrics.md"


def tool(name: str) -> Path:
    """Return a console script of the test environment (not whichever is first on PATH)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{name} not found next to {sys.executable}; run `uv sync`", pytrace=False)
    return path


def render(kubectl: Path, directory: Path) -> list[dict[str, Any]]:
    """Render a kustomization offline and return its documents."""
    done = subprocess.run(
        [str(kubectl), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize {directory} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """Return the documents of a kind (and name)."""
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def rule_groups() -> list[dict[str, Any]]:
    """Return spec.groups of the PrometheusRule: a plain Prometheus rule file's content."""
    rule = yaml.safe_load((K8S / "monitoring" / "prometheusrule.yaml").read_text())
    return rule["spec"]["groups"]


def free_port() -> int:
    """Return a loopback TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET a URL; return the status and body (error statuses included)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` until it is true; fail loudly with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class PrometheusServer:
    """A real prometheus process on loopback and the helpers to query its HTTP API."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """Call /api/v1/<path>; return the decoded JSON body whatever the status."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        _, body = http_get(f"{self.base_url}/api/v1/{path}{query}", timeout=10)
        return json.loads(body)

    def log(self) -> str:
        """Return what the server has logged so far."""
        return self.log_path.read_text(errors="replace")


def start_prometheus(
    binary: str, workdir: Path, scrape_configs: list[dict[str, Any]]
) -> Iterator[PrometheusServer]:
    """Run prometheus with the SonoBridge rules on a free loopback port; stop it afterwards."""
    rules = workdir / "sonobridge.rules.yml"
    rules.write_text(yaml.safe_dump({"groups": rule_groups()}))
    config = workdir / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "scrape_configs": scrape_configs,
            }
        )
    )
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(f"http://127.0.0.1:{port}", process, log_path)
    try:

        def ready() -> bool:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited with {process.returncode}:\n{server.log()}")
            return http_get(f"{server.base_url}/-/ready", timeout=2)[0] == 200

        wait_for(ready, 60, "prometheus /-/ready")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_for_rule_evaluation(server: PrometheusServer, timeout: float = 60) -> list[dict[str, Any]]:
    """Wait until every loaded rule has been evaluated at least once; return the rules."""
    evaluated: list[dict[str, Any]] = []

    def all_evaluated() -> bool:
        nonlocal evaluated
        groups = server.api("rules")["data"]["groups"]
        evaluated = [rule for group in groups for rule in group["rules"]]
        return bool(evaluated) and all(
            not rule.get("lastEvaluation", "").startswith("0001-") for rule in evaluated
        )

    wait_for(all_evaluated, timeout, "every rule to be evaluated once")
    return evaluated


GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range_s": "3600",
    "$__range": "1h",
    "$__interval": "1m",
}


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's built-in and dashboard variables so Prometheus can run the query."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    # Dashboard variables only appear inside label matchers, as regular expressions.
    return re.sub(r"\$\{?[A-Za-z_]\w*\}?", ".*", expr)


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """Return (where, PromQL) for every panel target and templating query of a dashboard."""
    queries: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                queries.append((f"panel {panel['title']!r}", target["expr"]))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"]
        # Grafana's label_values(metric, label) is not PromQL; its metric is what matters.
        match = re.fullmatch(r"label_values\(\s*([^,]+?)\s*,\s*(\w+)\s*\)", query)
        assert match, f"variable {variable['name']}: unsupported query {query!r}"
        queries.append((f"variable {variable['name']!r}", f"group by ({match[2]}) ({match[1]})"))
    return queries


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Return every dashboard JSON by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


# ---- metric names in PromQL ------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<matchers>\{[^{}]*\})
    | (?P<range>\[[^\[\]]*\])
    | (?P<number>(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)(?:ms|[smhdwy])*)
    | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<punct>[()\[\],])
    | (?P<op>[-+*/%^=!<>~]+|@)
    | (?P<space>\s+)
    """,
    re.VERBOSE,
)
_AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip
_LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "Inf", "NaN"}
_NAME_MATCHER = re.compile(r"__name__\s*(=~|!=|!~|=)\s*\"([^\"]*)\"")


def _skip_parentheses(tokens: list[tuple[str, str]], index: int) -> int:
    """Return the index after the parenthesised group that starts at `index`."""
    depth = 0
    while index < len(tokens):
        text = tokens[index][1]
        depth += {"(": 1, ")": -1}.get(text, 0)
        index += 1
        if depth == 0:
            break
    return index


def metric_names(expr: str) -> set[str]:
    """Return the metric names a PromQL expression selects; fail on names given by regex."""
    tokens: list[tuple[str, str]] = []
    position = 0
    expr = grafana_to_promql(expr)
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"cannot tokenise PromQL at {expr[position : position + 20]!r}")
        position = match.end()
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append((kind, match.group()))
    names: set[str] = set()
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        after = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        index += 1
        if kind == "matchers":
            for operator, value in _NAME_MATCHER.findall(text):
                if operator != "=":
                    raise ValueError(f"metric chosen by {operator!r} on __name__: {expr!r}")
                names.add(value)
        elif kind != "ident" or text in _KEYWORDS or after == "(":
            # Functions and aggregations are followed by "("; strings, numbers and operators
            # name no metric.
            if kind == "ident" and text in _LABEL_LIST_KEYWORDS:
                index = _skip_parentheses(tokens, index)
        elif text in _LABEL_LIST_KEYWORDS or (text in _AGGREGATIONS and after in ("by", "without")):
            continue
        else:
            names.add(text)
    return names


# ---- the metric catalogue --------------------------------------------------------------------

_CATALOGUE_ROW = re.compile(r"^\|\s*`(sonobridge_[a-z_<>]+)`\s*\|\s*(counter|gauge|histogram)\s*\|")


def catalogue() -> dict[str, str]:
    """Return metric name -> type from docs/metrics.md, with <svc> expanded per service."""
    metrics: dict[str, str] = {}
    for line in CATALOGUE.read_text().splitlines():
        row = _CATALOGUE_ROW.match(line)
        if row is None:
            continue
        name, kind = row.groups()
        for service in SERVICES if "<svc>" in name else ("",):
            metrics[name.replace("<svc>", service)] = kind
    return metrics


def series_names(metrics: dict[str, str]) -> dict[str, str]:
    """Return every series name a query may select (histograms by their suffixes) -> metric."""
    names: dict[str, str] = {}
    for name, kind in metrics.items():
        if kind == "histogram":
            names.update({f"{name}{suffix}": name for suffix in ("_bucket", "_sum", "_count")})
        else:
            names[name] = name
    return names


# Series Prometheus itself writes for every target; not exported by the services.
PROMETHEUS_SERIES = frozenset({"up"})


def rule_expressions() -> list[tuple[str, str]]:
    """Return (rule name, expression) for every alerting and recording rule."""
    return [
        (rule.get("alert") or rule["record"], rule["expr"])
        for group in rule_groups()
        for rule in group["rules"]
    ]


def referenced_names() -> dict[str, set[str]]:
    """Return metric name -> where it is used, over all rules and dashboards."""
    uses: dict[str, set[str]] = {}
    sources = [(f"rule {name}", expr) for name, expr in rule_expressions()]
    for file, dashboard in load_dashboards().items():
        sources += [(f"{file} {where}", expr) for where, expr in dashboard_queries(dashboard)]
    for where, expr in sources:
        for name in metric_names(expr):
            uses.setdefault(name, set()).add(where)
    return uses
