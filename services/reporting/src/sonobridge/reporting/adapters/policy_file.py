"""Load and validate the routing policy (a YAML file, or the one shipped with the service)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from sonobridge.reporting.domain.policy import Policy, load_policy


class PolicyError(ValueError):
    """The routing policy cannot be used; the message names the file and the field."""


def read_policy(path: Path | None = None) -> Policy:
    """Return the validated policy at `path`, or the shipped default when `path` is None."""
    if path is None:
        name = "default routing policy"
        text = (
            resources.files("sonobridge.reporting.policy")
            .joinpath("default.yaml")
            .read_text(encoding="utf-8")
        )
    else:
        name = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"cannot read routing policy {name}: {exc}") from exc
    try:
        # libyaml's parser where the wheel has it: the pure-Python one is start-up time.
        document = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except yaml.YAMLError as exc:
        raise PolicyError(f"routing policy {name} is not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise PolicyError(f"routing policy {name} must be a mapping")
    try:
        return load_policy(document)
    except ValidationError as exc:
        raise PolicyError(f"routing policy {name} is invalid: {exc}") from exc
