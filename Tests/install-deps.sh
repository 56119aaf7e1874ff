#!/usr/bin/env bash
# Installs what the tests need, only what is missing: Debian packages (OpenSSL headers,
# Chromium + chromedriver + Firefox ESR + NSS tools + a CJK font for the browser test) and Python packages
# (websockets, selenium, pytest). Needs root (or sudo) for apt-get.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi

need_apt=()
need_apt_late=()
dpkg -s libssl-dev >/dev/null 2>&1 || need_apt+=(libssl-dev)
dpkg -s zlib1g-dev >/dev/null 2>&1 || need_apt+=(zlib1g-dev)
dpkg -s liburing-dev >/dev/null 2>&1 || need_apt+=(liburing-dev)
# Scale-out: hiredis headers (WSRedis), a real Redis and HAProxy for the cluster tests.
dpkg -s libhiredis-dev >/dev/null 2>&1 || need_apt+=(libhiredis-dev)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
[ -x /usr/lib/chromium/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
[ -x /usr/bin/firefox-esr ] || need_apt+=(firefox-esr)  # page test over WebDriver BiDi
command -v certutil >/dev/null 2>&1 || need_apt+=(libnss3-tools)
dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || need_apt+=(fonts-wqy-microhei)
# Install examples (Tests/integration/test_adopt_install.py): systemd-analyze verify, nginx stream.
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need_apt+=(libnginx-mod-stream)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

need_pip=()
python3 -c 'import websockets, sys; sys.exit(0 if int(websockets.__version__.split(".")[0]) >= 13 else 1)' 2>/dev/null \
  || need_pip+=('websockets>=13')
python3 -c 'import selenium' 2>/dev/null || need_pip+=('selenium>=4.10')
python3 -c 'import pytest' 2>/dev/null || need_pip+=(pytest)
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "install-deps: pip install ${need_pip[*]}"
  python3 -m pip install -q "${need_pip[@]}" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages "${need_pip[@]}"
fi
# tlsfuzzer (make tlsfuzz): its Python dependencies in a venv outside the repository; the
# tlsfuzzer scripts themselves come from a checkout (TLSFUZZER_DIR, see Tests/tlsfuzz/run.py).
command -v testssl >/dev/null 2>&1 || command -v testssl.sh >/dev/null 2>&1 || need_apt_late=(testssl.sh)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt_late+=(python3-venv)
if [ ${#need_apt_late[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need_apt_late[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt_late[@]}" >/dev/null
fi
TLSFUZZER_VENV="${TLSFUZZER_VENV:-$HOME/.cache/wss-server/tlsfuzzer-venv}"
if ! "$TLSFUZZER_VENV/bin/python" -c 'import tlslite, ecdsa' 2>/dev/null; then
  echo "install-deps: tlsfuzzer venv in $TLSFUZZER_VENV"
  python3 -m venv "$TLSFUZZER_VENV"
  "$TLSFUZZER_VENV/bin/pip" install -q 'tlslite-ng==0.9.0b2' 'ecdsa>=0.19'
fi
echo "install-deps: ok"
