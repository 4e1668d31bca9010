#!/bin/sh
# Install Debian's headless-capable Chromium if it is missing (CI; the report screenshot test
# in tests/unit/reporting/test_report_browser.py needs it). Needs root (or sudo) and apt-get.
set -eu
if command -v chromium >/dev/null 2>&1; then
    chromium --version
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core
chromium --version
