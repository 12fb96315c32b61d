#!/usr/bin/env bash
# Set up a fresh machine: uv, the locked Python environment, and (with --infra) the pinned local
# Kafka, MinIO, PostgreSQL, Toxiproxy (link emulator), SeaweedFS (second S3 server), the
# Debian tools the tests use (dcmtk, chromium, curl, ...) and the pinned OHIF viewer. Idempotent;
# caches outside the clone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

UV_VERSION=0.13.9
export PATH="$HOME/.local/bin:$PATH"

if ! command -v uv >/dev/null || [[ "$(uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]]; then
    echo "setup: installing uv $UV_VERSION"
    python3 -m pip install --user --quiet --disable-pip-version-check "uv==$UV_VERSION" \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "uv==$UV_VERSION"
fi
echo "setup: $(uv --version)"
uv sync --locked --quiet
echo "setup: python environment synced from uv.lock"
# The viewer the single node serves at /viewer (make demo prints its address and the station's).
if command -v npm >/dev/null; then
    echo "setup: OHIF viewer in $(scripts/ohif.sh)"
else
    echo "setup: npm not found; the single node runs without the OHIF viewer" >&2
fi

if [[ "${1:-}" == "--infra" ]]; then
    apt_missing=()
    command -v storescu >/dev/null || apt_missing+=(dcmtk)
    # dciodvfy checks the AI's SR and secondary captures against the IODs.
    command -v dciodvfy >/dev/null || apt_missing+=(dicom3tools)
    command -v pdftoppm >/dev/null || apt_missing+=(poppler-utils)
    # The weak-link test's baseline is one plain curl upload.
    command -v curl >/dev/null || apt_missing+=(curl)
    # A CJK TrueType font the report PDFs embed, so Chinese renders in any viewer.
    [[ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ]] || apt_missing+=(fonts-wqy-zenhei)
    # The browser the OHIF viewer test drives through Playwright (never `playwright install`).
    command -v chromium >/dev/null || apt_missing+=(chromium)
    if ((${#apt_missing[@]})); then
        [[ $(id -u) -eq 0 ]] || { echo "setup: need root to apt-get install ${apt_missing[*]}" >&2; exit 1; }
        echo "setup: apt-get install ${apt_missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${apt_missing[@]}" >/dev/null
    fi
    # "all" includes Toxiproxy and SeaweedFS (a long first Go build; SONOBRIDGE_SEAWEEDFS=0 skips it).
    deploy/local/install.sh all
    scripts/k8s_tools.sh
fi
