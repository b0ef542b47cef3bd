#!/usr/bin/env bash
# Install Debian's chromium and chromium-driver: the real browser the dashboards' end-to-end tests
# drive through selenium and the system chromedriver (/usr/bin/chromedriver). From Debian's own
# archive only -- no tool that downloads its own browser (they fail on a closed network).
#
# Idempotent: when both packages are installed (dpkg) a run ends at once, without apt or root.
# Not root: re-runs itself through sudo (a password prompt only on a terminal, else sudo -n).
# An unreachable archive is a clear error (apt-get update --error-on=any), not a silent half-install.
set -euo pipefail

readonly TAG=install-browser
readonly PACKAGES=(chromium chromium-driver)
readonly LOG_FILE=/var/cache/asbuilt/install-browser.log

log() { printf '[%s] %s\n' "$TAG" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

is_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
    [[ -x /usr/bin/chromedriver ]] || die "chromium-driver is installed but /usr/bin/chromedriver is missing; reinstall it: apt-get install --reinstall chromium-driver"
    log "chromium and chromium-driver already installed ($(dpkg-query -W -f='${Version}' chromium))"
    exit 0
fi

if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 ||
        die "installing ${missing[*]} needs root (and sudo is not installed); run: apt-get install chromium chromium-driver"
    log "not root: re-running through sudo"
    prompt=-n
    [[ -t 0 ]] && prompt=
    exec sudo ${prompt:+"$prompt"} -- bash "$(readlink -f "${BASH_SOURCE[0]}")" "$@"
fi
command -v apt-get >/dev/null 2>&1 ||
    die "no apt-get: this script installs Debian's packages; install chromium and its chromedriver yourself (chromedriver at /usr/bin/chromedriver)"

mkdir -p "$(dirname "$LOG_FILE")"
: >"$LOG_FILE"
log "installing ${missing[*]} from Debian's archive (log: $LOG_FILE)"
if ! apt-get update --error-on=any >>"$LOG_FILE" 2>&1; then
    reason=$(grep -E '^(E|W|Err):' "$LOG_FILE" | head -n 1 || true)
    die "cannot reach the Debian package archive configured in /etc/apt: ${reason:-apt-get update failed}; fix the network or the apt sources, then run make install again"
fi
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
    >>"$LOG_FILE" 2>&1; then
    tail -n 20 "$LOG_FILE" | sed 's/^/    /' >&2
    die "apt-get install ${missing[*]} failed (see above and $LOG_FILE)"
fi
[[ -x /usr/bin/chromedriver ]] || die "installed chromium-driver, yet /usr/bin/chromedriver is missing"
log "installed: $(/usr/bin/chromedriver --version 2>/dev/null | head -n 1)"
