#!/usr/bin/env bash
# Lint and format-check, check import boundaries, and type-check common plus every service's
# domain and handlers strictly (imported modules are followed for types, not reported).
set -euo pipefail
cd "$(dirname "$0")/.."
uv run ruff check . && uv run ruff format --check .
uv run lint-imports
cores=(-p sonobridge.common)
for service in ingest inference reporting maintenance; do
  cores+=(-p "sonobridge.$service.domain" -p "sonobridge.$service.handlers")
done
uv run mypy --strict --follow-imports=silent "${cores[@]}"
