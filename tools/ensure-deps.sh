#!/usr/bin/env bash
# Installs the Debian packages the README's commands need, when missing.
# Usage: tools/ensure-deps.sh run|test|bench|faults (bench: with PEERS=0, no peers)
# As root on Debian it installs with apt-get and says so; elsewhere it prints
# what to install and fails.
set -euo pipefail
want=(redis-server)
if [ "${1:-}" = test ]; then
  want+=(redis-sentinel python3-xgboost python3-sklearn chromium)
fi
if [ "${1:-}" = faults ]; then
  want+=(redis-sentinel)
fi
if [ "${1:-}" = bench ]; then
  want+=(wrk)
  # The Python peers of ../shared/peers (its README.md).
  [ "${PEERS:-1}" = 0 ] || want+=(python3-xgboost python3-fastapi python3-uvicorn python3-httptools python3-uvloop python3-celery python3-redis)
fi
missing=()
for pkg in "${want[@]}"; do
  case "$pkg" in
    redis-server|redis-sentinel) command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg") ;;
    python3-*) /usr/bin/python3 -c "import ${pkg#python3-}" >/dev/null 2>&1 || missing+=("$pkg") ;;
    wrk) command -v wrk >/dev/null 2>&1 || missing+=("$pkg") ;;
    chromium) command -v chromium >/dev/null 2>&1 || missing+=("$pkg") ;;
  esac
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-deps: installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi
echo "ensure-deps: missing ${missing[*]}. On Debian or Ubuntu: sudo apt-get install -y ${missing[*]}" >&2
echo "ensure-deps: elsewhere install Redis 7 (redis-server and redis-sentinel on PATH), Python 3 with xgboost 1.7 and scikit-learn at /usr/bin/python3, and Chromium (chromium on PATH, for the dashboard test); for make bench, wrk and the Python packages of ../shared/peers/README.md." >&2
exit 1
