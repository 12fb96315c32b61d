#!/usr/bin/env bash
# The whole test suite from nothing: set up, start the real local servers once, lint, run every
# test (unit, contract, integration on real Kafka/MinIO/PostgreSQL, e2e), stop what it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.local/bin:$PATH"
started=$SECONDS

scripts/setup.sh --infra
echo "test: set-up took $((SECONDS - started)) s"

# Leave servers that were already running (make up) as they were; stop those started here.
was_up=$(deploy/local/status.sh 2>/dev/null | grep -c ': up' || true)
deploy/local/up.sh all
cleanup() { if [[ "$was_up" -eq 0 ]]; then deploy/local/down.sh all >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT
eval "$(deploy/local/env.sh)"

uv run ruff check .
uv run lint-imports
uv run mypy services/common/src
uv run python scripts/gen_protos.py --check

# pytest exits 5 when it collects nothing; that must fail CI, never pass it.
status=0
uv run pytest -p no:cacheprovider "$@" || status=$?
if [[ $status -eq 5 ]]; then
    echo "test: pytest collected no tests" >&2
fi
echo "test: whole run took $((SECONDS - started)) s"
exit "$status"
