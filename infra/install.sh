#!/usr/bin/env bash
# Install what asbuilt needs, idempotently, with a line per step and its time:
#   1. uv (pinned, from PyPI) in .tools/   2. the locked Python environment in .venv/
#   3. PostgreSQL + TimescaleDB from Debian's archive (skipped when ASBUILT_DB_DSN is set)
#   4. node-opcua (npm, pinned) in tests/interop/node_modules/ for the OPC UA interoperability test
#   5. Debian's chromium + chromium-driver for the dashboards' browser tests (infra/install-browser.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
say() { printf '[install] %s\n' "$*" >&2; }
step() {  # step "what" command...: run it, say how long it took, stop with the reason if it fails
  local what=$1 start=$SECONDS; shift
  say "$what…"
  if ! "$@"; then say "FAILED: $what (see the messages above)"; exit 1; fi
  say "$what: done in $((SECONDS - start)) s"
}

# CPython 3.11 or 3.12 (bytewax 0.21.1 has no 3.13 wheels): on PATH, or pyenv's, or Debian's.
python=""
for candidate in python3.11 python3.12 python3 \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.11*/bin/python3 \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3 \
    /usr/bin/python3.11 /usr/bin/python3.12; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; assert (3, 11) <= sys.version_info[:2] < (3, 13)' 2>/dev/null; then
    python=$(command -v "$candidate"); break
  fi
done
if [ -z "$python" ]; then
  say "asbuilt needs CPython 3.11 or 3.12 (bytewax 0.21.1 has no 3.13 wheels); none found"
  say "(looked on PATH, in pyenv's versions and in /usr/bin)."
  say "fix: install CPython 3.11 or 3.12 (e.g. \`pyenv install 3.11\`) and run make again"
  exit 1
fi

install_uv() {
  if [ ! -x .tools/bin/python ] && ! "$python" -m venv .tools; then
    say "cannot create a virtual environment with $python;"
    say "fix: apt-get install python3-venv (Debian's python3.X-venv), then run make again"
    rm -rf .tools
    return 1
  fi
  .tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
}
if [ "$(.tools/bin/uv --version 2>/dev/null)" != "uv $UV_VERSION" ]; then
  step "installing uv $UV_VERSION into .tools/" install_uv
fi

step "syncing the locked Python environment into .venv/" \
  .tools/bin/uv sync --frozen --quiet --python "$python"

if [ -n "${ASBUILT_DB_DSN:-}" ]; then
  say "ASBUILT_DB_DSN is set: using that TimescaleDB, installing none"
else
  step "PostgreSQL + TimescaleDB (built once, then only checked)" bash infra/install-timescaledb.sh >/dev/null
fi

# 4. node-opcua (pinned by tests/interop/package-lock.json, from the npm registry): the OPC UA
#    server that is not asyncua, for the connector's interoperability test. `npm ci` runs only
#    when the lockfile or Node.js changed since the last install (a stamp in node_modules/).
install_interop() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    say "the OPC UA interoperability test (tests/interop, node-opcua) needs Node.js and npm;"
    say "fix: install nodejs and npm (apt-get install nodejs npm), then run make again"
    return 1
  fi
  local major stamp want
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ]; then
    say "node-opcua (tests/interop) needs Node.js >= 20; found $(node --version)."
    say "fix: install nodejs 20 or newer (e.g. Debian 13's nodejs), then run make again"
    return 1
  fi
  stamp=tests/interop/node_modules/.asbuilt-stamp
  want="$(sha256sum tests/interop/package-lock.json | cut -d' ' -f1) node $(node --version)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0  # up to date
  fi
  (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || return 1
  printf '%s\n' "$want" >"$stamp"
}
step "node-opcua for the OPC UA interoperability test (npm ci in tests/interop)" install_interop

# 5. A real browser for the dashboards' end-to-end tests: Debian's chromium and chromium-driver
#    (selenium drives /usr/bin/chromedriver). Instant when both are installed (a dpkg check).
step "chromium + chromium-driver for the dashboards' browser tests" bash infra/install-browser.sh
