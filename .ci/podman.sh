#!/usr/bin/env bash
# Installs what identity_data_tests/deploy builds and runs the production image with: podman and
# runc (Debian packages) and a local base image made by mmdebstrap from the Debian mirror, because
# Docker Hub (python:3.11-slim-bookworm) is unreachable here. The Dockerfile is built unchanged
# with `--from` this base. Idempotent and cached under .services/podman/ (keyed by the recipe), so
# a rerun only checks; a clean clone makes everything from nothing. For Debian, as root.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=.services/podman
# The recipe of the base: same Debian release as python:3.11-slim-bookworm, its python3 (3.11).
SUITE=bookworm
BASE_PACKAGES="python3,python3-pip,ca-certificates"
BASE_TAG="localhost/identity-data-base:bookworm-py311"
want="$SUITE $BASE_PACKAGES $BASE_TAG minbase v1"

if ! command -v podman >/dev/null || ! command -v runc >/dev/null \
    || ! command -v mmdebstrap >/dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        podman runc mmdebstrap
fi

mkdir -p "$ROOT"
ABS_ROOT="$(cd "$ROOT" && pwd)"
# A private configuration: crun (the default) fails on this kind of VM with rlimit and cgroup
# hybrid-mode errors; runc with explicit ulimits works. Storage stays under .services/ so the
# layer cache survives between runs and never touches the host's /var/lib/containers.
cat >"$ROOT/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
cat >"$ROOT/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$ABS_ROOT/storage"
runroot = "$ABS_ROOT/run"
CONF
export CONTAINERS_CONF="$ABS_ROOT/containers.conf"
export CONTAINERS_STORAGE_CONF="$ABS_ROOT/storage.conf"

if [ "$(cat "$ROOT/base.recipe" 2>/dev/null)" != "$want" ] \
    || ! podman image exists "$BASE_TAG"; then
    rm -f "$ROOT/base.tar" "$ROOT/base.recipe"
    start=$(date +%s)
    # minbase + python; the EXTERNALLY-MANAGED marker would make `pip install` (the Dockerfile's
    # first step) refuse, as it is absent from the official python image; apt lists are dropped.
    mmdebstrap --variant=minbase --include="$BASE_PACKAGES" \
        --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
        "$SUITE" "$ROOT/base.tar"
    podman import --change 'CMD ["python3"]' "$ROOT/base.tar" "$BASE_TAG" >/dev/null
    rm -f "$ROOT/base.tar"
    echo "$want" >"$ROOT/base.recipe"
    echo "base image $BASE_TAG made in $(($(date +%s) - start)) s"
fi
podman --version
runc --version | head -1
podman image inspect --format '{{.Size}}' "$BASE_TAG" | awk '{printf "base image: %.0f MB\n", $1/1e6}'
