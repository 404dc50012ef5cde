#!/usr/bin/env bash
# Install everything the test suite needs, then run it: the README's test command.
# Extra arguments go to pytest (e.g. `bash tests/run.sh -k inspector`).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet -e '.[test]'

# The web inspector's tests drive a real headless Chromium: Debian's package, not a download.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "tests/run.sh: the browser tests need Chromium: sudo apt-get install chromium" >&2
    exit 1
  fi
fi

# The TLS and proxy tests drive curl, and run the JavaScript SDK in a network namespace (ip netns,
# as root: CI is root). Both come from Debian.
missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "tests/run.sh: the TLS and proxy tests need ${missing[*]}: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

# The PostgreSQL journal's tests start their own PostgreSQL 15 servers (initdb/pg_ctl in a
# temporary folder, as the postgres user when run as root): Debian's package, not a service.
if [ ! -x /usr/lib/postgresql/15/bin/initdb ] && [ -z "${LOGX_PG_BIN:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
  else
    echo "tests/run.sh: the PostgreSQL tests need PostgreSQL 15: sudo apt-get install postgresql" \
         "(or set LOGX_PG_BIN to another version's bin folder)" >&2
    exit 1
  fi
fi

# The real Optimizely JavaScript SDK (tests/test_js_sdk.py) comes from npm, pinned by its lock.
if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "tests/run.sh: the JavaScript SDK tests need Node.js: sudo apt-get install nodejs npm" >&2
    exit 1
  fi
fi
npm ci --prefix tests/js_sdk --no-audit --no-fund --silent

exec python3 -m pytest -n 2 "$@"
