#!/usr/bin/env bash
# Install the tools the deploy checks need: promtool and prometheus (Debian), kubectl and
# kubernetes-validate (uv dev dependencies). Idempotent; never leaves a Prometheus running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    [[ $(id -u) -eq 0 ]] || {
        echo "k8s_tools: promtool missing; run as root to apt-get install prometheus" >&2
        exit 1
    }
    # The Debian package would start its own server on :9090 through invoke-rc.d: a
    # policy-rc.d answering 101 forbids that while apt runs; any earlier one is put back after.
    policy=/usr/sbin/policy-rc.d
    backup=""
    if [[ -e $policy ]]; then
        backup=$(mktemp)
        cp -p "$policy" "$backup"
    fi
    restore() { if [[ -n $backup ]]; then mv -f "$backup" "$policy"; else rm -f "$policy"; fi; }
    trap restore EXIT
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    restore
    trap - EXIT
    # Where systemd runs, it must not start the packaged server at boot either.
    if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
        systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
fi
if command -v ss >/dev/null && ss -ltn 'sport = :9090' | grep -q LISTEN; then
    echo "k8s_tools: something listens on :9090; the packaged prometheus must not run" >&2
    exit 1
fi
echo "k8s_tools: $(promtool --version 2>&1 | head -n1)"
echo "k8s_tools: $(uv run kubectl version --client 2>&1 | head -n1)"
echo "k8s_tools: kubernetes-validate $(uv run kubernetes-validate --version 2>&1)"
