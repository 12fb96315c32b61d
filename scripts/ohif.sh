#!/usr/bin/env bash
# Fetch the pinned OHIF viewer (npm @ohif/app, prebuilt dist) into a cache outside the clone for
# the browser tests; print the dist directory. Idempotent: a finished fetch is kept by a marker.
set -euo pipefail

OHIF_VERSION=3.13.2
# sha1 of the npm tarball as the registry publishes it (npm view @ohif/app@3.13.2 dist.shasum).
OHIF_SHA1=26a51ffcc1704c30fff403258a1d7392e9a991f3
CACHE="${SONOBRIDGE_CACHE:-$HOME/.cache/sonobridge}/ohif"
HOME_DIR="$CACHE/$OHIF_VERSION"

if [[ ! -f "$HOME_DIR/.installed" ]]; then
    command -v npm >/dev/null || { echo "ohif: npm not found; it fetches @ohif/app" >&2; exit 1; }
    started=$SECONDS
    mkdir -p "$CACHE"
    tarball="$CACHE/ohif-app-$OHIF_VERSION.tgz"
    if [[ ! -f "$tarball" ]] || ! echo "$OHIF_SHA1  $tarball" | sha1sum -c --quiet - 2>/dev/null; then
        (cd "$CACHE" && npm pack --silent "@ohif/app@$OHIF_VERSION" >/dev/null)
    fi
    echo "$OHIF_SHA1  $tarball" | sha1sum -c --quiet - || { echo "ohif: checksum mismatch" >&2; exit 1; }
    rm -rf "$HOME_DIR.partial"
    mkdir -p "$HOME_DIR.partial"
    tar -xzf "$tarball" -C "$HOME_DIR.partial"
    rm -rf "$HOME_DIR"
    mv "$HOME_DIR.partial" "$HOME_DIR"
    touch "$HOME_DIR/.installed"
    echo "ohif: @ohif/app $OHIF_VERSION unpacked in $HOME_DIR ($((SECONDS - started)) s)" >&2
fi
echo "$HOME_DIR/package/dist"
