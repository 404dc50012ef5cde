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

exec python3 -m pytest -n 2 "$@"
