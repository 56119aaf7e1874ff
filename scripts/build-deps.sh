#!/usr/bin/env bash
# Installs the C headers `swift build` needs, only those missing (Debian packages): OpenSSL,
# zlib, hiredis (WSRedis) and liburing (Transport's io_uring wrapper), plus `openssl` for
# `make certs`. Quiet and quick when everything is there. Needs root (or sudo) to install.
set -euo pipefail
need=()
for p in libssl-dev zlib1g-dev libhiredis-dev liburing-dev; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "build-deps: missing ${need[*]}: run 'apt-get install ${need[*]}' as root" >&2; exit 1; }
  SUDO=sudo
fi
echo "build-deps: apt-get install ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
