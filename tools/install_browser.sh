#!/usr/bin/env bash
# Install the headless browser the end-to-end test (tests/test_browser.py) drives.
# Idempotent: does nothing when Chromium is already there. Playwright's own browser
# download (`playwright install`) needs the internet; Debian's chromium package only
# needs the package mirror, so that is what we install.
set -euo pipefail

CHROMIUM=${DLEFF_CHROMIUM:-/usr/bin/chromium}

if [ -x "$CHROMIUM" ]; then
    echo "browser: $CHROMIUM is already installed ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown'))"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser: $CHROMIUM is missing and apt-get is not available here;" \
         "install Chromium yourself (or set DLEFF_CHROMIUM); the browser test will be skipped"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    # Not an error: without root the browser test skips and says how to enable it.
    echo "browser: $CHROMIUM is missing; installing it needs root: run 'sudo apt-get install -y chromium'"
    exit 0
fi

echo "browser: installing Debian's chromium with apt-get (once; about 100 MB)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q chromium
echo "browser: installed $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
