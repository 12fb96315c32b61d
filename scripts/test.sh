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
# Keycloak (the login tests) takes minutes to start on two cores: for the whole suite, start it
# now so it comes up beside the lint; its fixture then finds it up or waits for this start.
keycloak_was_up=1
if [[ $# -eq 0 ]] && ! deploy/local/status.sh keycloak >/dev/null 2>&1; then
    keycloak_was_up=0
    mkdir -p var
    deploy/local/up.sh keycloak >var/test-keycloak-up.log 2>&1 &
fi
cleanup() {
    if [[ "$was_up" -eq 0 ]]; then deploy/local/down.sh all >/dev/null 2>&1 || true; fi
    if [[ "$keycloak_was_up" -eq 0 ]]; then deploy/local/down.sh keycloak >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
eval "$(deploy/local/env.sh)"

# The guardrails (ruff, import boundaries, mypy --strict on common and every domain and handlers
# package) fail the run before any test does.
scripts/lint.sh
uv run python scripts/gen_protos.py --check

# A run whose process held over 900 descriptors fails even if every test passed: past 1024,
# select() in pynetdicom's requestor (the tests' DIMSE clients) reads every association as
# closed, so a descriptor leak would show as unrelated aborts.
export SONOBRIDGE_FD_STRICT="${SONOBRIDGE_FD_STRICT:-1}"
# pytest exits 5 when it collects nothing; that must fail CI, never pass it.
status=0
uv run pytest -p no:cacheprovider "$@" || status=$?
if [[ $status -eq 5 ]]; then
    echo "test: pytest collected no tests" >&2
fi
echo "test: whole run took $((SECONDS - started)) s"
exit "$status"
