"""`python -m sonobridge.inference shadow-report`: shadow versus serving on live expert labels."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from pydantic import ValidationError

from sonobridge.inference.domain.comparison import VersionComparison
from sonobridge.inference.domain.validation import GATING_MODELS
from sonobridge.inference.entrypoints.comparison import comparison_document, comparison_text
from sonobridge.inference.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sonobridge.inference shadow-report",
        description=(
            "Compare a gating model's serving and shadow versions per device model on the live "
            "instances experts labelled: false rescans, faults caught, agreement, and whether "
            "promotion would meet the card. Reads the deployment's inference database and "
            "model registry from the usual settings (EDITION, DATA_DIR, DB__URL, STORAGE__*)."
        ),
    )
    parser.add_argument("--model", choices=GATING_MODELS, default="image-quality")
    parser.add_argument("--json", action="store_true", help="print the REST route's document")
    return parser


def run(argv: list[str], compare: Callable[[Settings, str], VersionComparison]) -> int:
    """Print the comparison `compare` builds from the settings; 2 on invalid settings."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"invalid settings:\n{exc}", file=sys.stderr)
        return 2
    found = compare(settings, args.model)
    if args.json:
        print(json.dumps(comparison_document(found), indent=2))
    else:
        print(comparison_text(found))
    return 0
