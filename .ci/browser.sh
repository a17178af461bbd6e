#!/usr/bin/env bash
# Installs the browser that identity_data_tests/ui drives: Debian's chromium. Playwright's own
# browser builds are downloaded from a CDN outside the package registries, so the UI tests point
# the PyPI `playwright` package at /usr/bin/chromium instead. Idempotent; for Debian, as root.
set -euo pipefail

if [ ! -x /usr/bin/chromium ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
/usr/bin/chromium --version
