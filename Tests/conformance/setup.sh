#!/usr/bin/env bash
# Installs the Autobahn|Testsuite fuzzing client (wstest, Python 2.7) into a virtualenv
# OUTSIDE the repository. Idempotent: does nothing if "$VENV/bin/wstest" already works.
#
#   AUTOBAHN_VENV  venv folder (default: $HOME/.cache/wss-server/autobahn-venv)
#   PY27           Python 2.7 interpreter (default: pyenv's 2.7.18)
set -euo pipefail

VENV="${AUTOBAHN_VENV:-${HOME:-/root}/.cache/wss-server/autobahn-venv}"
export PYTHONWARNINGS=ignore PIP_ROOT_USER_ACTION=ignore

wstest_works() {
    [ -x "$VENV/bin/wstest" ] && timeout 60 "$VENV/bin/wstest" -a >/dev/null 2>&1
}

if wstest_works; then
    echo "setup: wstest already installed in $VENV"
    exit 0
fi

# --- find pyenv's Python 2.7.18 (pyenv may not be on PATH in a non-interactive shell) ---
find_py27() {
    local roots=() r
    if command -v pyenv >/dev/null 2>&1; then
        r="$(pyenv root 2>/dev/null || true)"; [ -n "$r" ] && roots+=("$r")
    fi
    [ -n "${PYENV_ROOT:-}" ] && roots+=("$PYENV_ROOT")
    [ -n "${HOME:-}" ] && roots+=("$HOME/.pyenv")
    roots+=("/root/.pyenv")
    for r in "${roots[@]}"; do
        if [ -x "$r/versions/2.7.18/bin/python" ]; then
            echo "$r/versions/2.7.18/bin/python"; return 0
        fi
    done
    return 1
}

if [ -z "${PY27:-}" ]; then
    PY27="$(find_py27)" || {
        echo "setup: error: Python 2.7.18 not found (looked in \$(pyenv root), \$PYENV_ROOT, \$HOME/.pyenv, /root/.pyenv);" \
             "set PY27=/path/to/python2.7" >&2
        exit 1
    }
fi
"$PY27" -c 'import sys; assert sys.version_info[:2] == (2, 7)' || {
    echo "setup: error: $PY27 is not Python 2.7" >&2; exit 1; }
echo "setup: using $PY27"

PY3="$(command -v python3 || true)"
[ -n "$PY3" ] || { echo "setup: error: python3 not found" >&2; exit 1; }

TOOL="$(mktemp -d)"
trap 'rm -rf "$TOOL"' EXIT

# The last virtualenv able to create Python 2.7 environments, installed aside (not into the system).
"$PY3" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$TOOL" 'virtualenv<20.22'

rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
PYTHONPATH="$TOOL" "$PY3" -m virtualenv --quiet -p "$PY27" "$VENV"

"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-warn-script-location \
    autobahntestsuite==0.8.2 autobahn==0.10.9 Twisted==20.3.0 txaio==2.1.0 \
    pyOpenSSL==21.0.0 cryptography==3.3.2 service-identity==21.1.0 klein==20.6.0 Werkzeug==1.0.1 \
    Jinja2==2.11.3 MarkupSafe==1.1.1 wsaccel==0.6.6 ujson==2.0.3

if ! wstest_works; then
    echo "setup: error: $VENV/bin/wstest does not run" >&2
    "$VENV/bin/wstest" -a >&2 || true
    exit 1
fi
echo "setup: $("$VENV/bin/wstest" -a 2>/dev/null | tr '\n' ' ')"
echo "setup: wstest installed in $VENV"
