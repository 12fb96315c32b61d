"""One Dockerfile builds every service: a locked, non-root, multi-stage image of the named one."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from deploy_k8s.k8s_support import REPO_ROOT, SERVICES

DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"


def _dockerfile() -> str:
    return DOCKERFILE.read_text()


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_services_share_one_dockerfile() -> None:
    assert DOCKERFILE.is_file()
    assert not list((REPO_ROOT / "services").glob("*/Dockerfile")), "one recipe, not one each"
    assert ("ARG", "SERVICE") in _instructions(_dockerfile())
    # The build refuses an unknown or missing SERVICE instead of building an empty image.
    for service in SERVICES:
        assert service in _dockerfile().split("case", 1)[1].split("esac", 1)[0]


def test_dockerfile_is_multi_stage_locked_and_non_root() -> None:
    steps = _instructions(_dockerfile())
    stages = [arg for op, arg in steps if op == "FROM"]
    assert len(stages) == 2 and stages[0].endswith("AS build") and stages[1].endswith("AS runtime")
    runs = " ".join(arg for op, arg in steps if op == "RUN")
    assert 'uv sync --locked --no-dev --no-editable --package "sonobridge-${SERVICE}"' in runs
    assert "--no-install-workspace" in runs, "dependencies get their own cached layer"
    froms = [index for index, (op, _) in enumerate(steps) if op == "FROM"]
    runtime = steps[froms[-1] :]
    copies = [arg for op, arg in runtime if op == "COPY"]
    assert copies == ["--from=build /app/.venv /app/.venv"], "the runtime gets the venv only"
    (user,) = [arg for op, arg in runtime if op == "USER"]
    uid, gid = (int(part) for part in user.split(":"))
    # Numeric and equal to the manifests' runAsUser, so runAsNonRoot can be verified.
    assert uid == gid == 10001
    (expose,) = [arg for op, arg in runtime if op == "EXPOSE"]
    assert expose.split() == ["8080", "50051"]


@pytest.mark.parametrize("service", SERVICES)
def test_the_entrypoint_runs_the_named_services_command(service: str) -> None:
    steps = _instructions(_dockerfile())
    (entrypoint,) = [arg for op, arg in steps if op == "ENTRYPOINT"]
    # Exec form, so Kubernetes' args (["migrate"]) follow it and signals reach the service.
    assert entrypoint == '["/app/.venv/bin/sonobridge-service"]'
    runs = " ".join(arg for op, arg in steps if op == "RUN")
    assert 'ln -s "sonobridge-${SERVICE}" /app/.venv/bin/sonobridge-service' in runs
    # The link names the service's console script, which runs `python -m sonobridge.<service>`.
    pyproject = (REPO_ROOT / "services" / service / "pyproject.toml").read_text()
    assert f'sonobridge-{service} = "sonobridge.{service}.__main__:main"' in pyproject


def test_only_inference_has_a_gpu_variant() -> None:
    text = _dockerfile()
    assert '[ "${ORT_FLAVOUR}" = "gpu" ] && [ "${SERVICE}" = "inference" ]' in text
    assert '"onnxruntime-gpu[cuda,cudnn]==${ort_version}"' in text
    assert "--constraint /tmp/locked.txt" in text, "other packages stay at their locked versions"


def test_only_reporting_installs_the_cjk_font() -> None:
    runs = [arg for op, arg in _instructions(_dockerfile()) if op == "RUN"]
    (font,) = [arg for arg in runs if "fonts-wqy-zenhei" in arg]
    assert font.startswith('if [ "${SERVICE}" = "reporting" ]')


def test_dockerignore_keeps_the_context_to_what_the_images_need() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*"
    assert {"!uv.lock", "!pyproject.toml", "!proto", "!services"} <= set(patterns)
    copied = {
        arg.split()[0]
        for op, arg in _instructions(_dockerfile())
        if op == "COPY" and not arg.startswith("--from")
    }
    roots = {"uv.lock", "pyproject.toml", "proto", "services"}
    assert all(path.split("/")[0] in roots or path == "lab/pyproject.toml" for path in copied)
    assert "!lab/pyproject.toml" in patterns and "!lab" not in patterns, "the lab's code stays out"


@pytest.mark.slow
@pytest.mark.parametrize("service", SERVICES)
def test_image_install_step_gives_an_importable_service_without_dev_tools(
    service: str, tmp_path: Path
) -> None:
    # Runs the Dockerfile's install command as the build stage would, minus Docker: it proves the
    # lock file holds a complete, dev-free environment for the service.
    uv = shutil.which("uv")
    assert uv, "uv is not on PATH"
    venv = tmp_path / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_LINK_MODE": "copy"}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        [uv, "sync", "--locked", "--no-dev", "--no-editable", "--package", f"sonobridge-{service}"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u, sys; "
            f"import sonobridge.{service}; "
            "sys.exit(0 if u.find_spec('pytest') is None else 3)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stdout + probe.stderr


def test_dependency_layer_copies_every_workspace_members_pyproject() -> None:
    # uv sync --locked fails in the image if any workspace member's pyproject is missing.
    workspace = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["uv"]
    members = {
        str(p.relative_to(REPO_ROOT))
        for pattern in workspace["workspace"]["members"]
        for p in REPO_ROOT.glob(f"{pattern}/pyproject.toml")
    }
    assert "services/ingest/pyproject.toml" in members
    copied = {
        line.split()[1]
        for line in _dockerfile().splitlines()
        if line.startswith("COPY ") and line.split()[1].endswith("pyproject.toml")
    }
    assert members <= copied, f"the image misses {sorted(members - copied)}"
