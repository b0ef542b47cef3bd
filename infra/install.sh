#!/usr/bin/env bash
# Install what asbuilt needs, idempotently, with a line per step and its time:
#   1. uv (pinned, from PyPI) in .tools/   2. the locked Python environment in .venv/
#   3. PostgreSQL + TimescaleDB from Debian's archive (skipped when ASBUILT_DB_DSN is set)
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
