#!/usr/bin/env bash
# Install PostgreSQL + the TimescaleDB extension on Debian 12 (bookworm) or
# Debian 13 (trixie), from Debian's own archive only.
#
#   Debian 13: apt-get install postgresql-17 postgresql-17-timescaledb
#   Debian 12: Debian 12 ships no timescaledb package, and trixie's binaries
#              need a newer libc, so we build trixie's *source* package
#              against bookworm's PostgreSQL 15 (Apache-licensed part only:
#              Debian strips the TSL sources).
#
# Idempotent: a second run finds everything in place and finishes in about a
# second without touching apt.  Progress goes to stderr; the last line on
# stdout is "PG_BINDIR=/usr/lib/postgresql/<major>/bin" (parsed by Python).
#
# Never edits /etc/apt: the trixie source index is fetched with a private apt
# configuration in $WORK_DIR.  Never leaves a cluster that it made running on
# port 5432.
#
# Environment:
#   ASBUILT_DB_DSN   if set, an existing TimescaleDB is used: nothing to do.
#   ASBUILT_BUILD_JOBS  parallel compile jobs on Debian 12 (default 2).
#   ASBUILT_OS_RELEASE  os-release file to read instead of /etc/os-release (tests).
set -euo pipefail

readonly TAG=install-timescaledb
readonly CACHE_ROOT=/var/cache/asbuilt
readonly WORK_DIR=$CACHE_ROOT/timescaledb-build
readonly LOG_FILE=$CACHE_ROOT/install-timescaledb.log
readonly LOCK_FILE=/run/lock/asbuilt-install-timescaledb.lock
readonly STAMP_NAME=.asbuilt-timescaledb-stamp
readonly KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
readonly BUILD_JOBS=${ASBUILT_BUILD_JOBS:-2}
readonly HEARTBEAT_SECONDS=15

APT_UPDATED=0       # the system apt lists were refreshed during this run
HEARTBEAT_PID=""    # background "still working" printer of the current step

# --------------------------------------------------------------------------
# output helpers
# --------------------------------------------------------------------------

log() { printf '[%s] %s\n' "$TAG" "$*" >&2; }

die() { # die EXIT_CODE MESSAGE...
    local code=$1
    shift
    log "ERROR: $*"
    exit "$code"
}

now() { date +%s.%N; }

since() { # seconds elapsed since $1, one decimal
    awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'
}

stop_heartbeat() {
    if [[ -n $HEARTBEAT_PID ]]; then
        kill "$HEARTBEAT_PID" 2>/dev/null || true
        wait "$HEARTBEAT_PID" 2>/dev/null || true
        HEARTBEAT_PID=""
    fi
}

# step DESCRIPTION CMD [ARGS...]
# Runs CMD with its output in $LOG_FILE, and reports the step with its timing
# on stderr.  A background heartbeat prints a line every $HEARTBEAT_SECONDS so
# that a slow step is never a silent minute.  On failure the tail of the log
# is shown and the exit status is returned.
step() {
    local desc=$1
    shift
    local t0 rc=0
    t0=$(now)
    if [[ -t 2 ]]; then
        printf '[%s] %s... ' "$TAG" "$desc" >&2
    else
        # A reader of a pipe sees whole lines only: announce the step now.
        log "$desc..."
    fi
    # fd 9 is the run lock: no child (nor a daemon apt starts) may keep it.
    (
        fmt='[%s]   ... still %s (%ss)\n'
        # On a terminal, rewrite the step's own line in place.
        [[ -t 2 ]] && fmt='\r[%s] %s... (%ss) '
        while sleep "$HEARTBEAT_SECONDS" >/dev/null 2>&1; do
            # shellcheck disable=SC2059
            printf "$fmt" "$TAG" "$desc" "$(since "$t0")" >&2
        done
    ) 9>&- &
    HEARTBEAT_PID=$!
    printf '\n=== %s: %s\n$ %s\n' "$(date -Is)" "$desc" "$*" >>"$LOG_FILE"
    "$@" >>"$LOG_FILE" 2>&1 </dev/null 9>&- || rc=$?
    stop_heartbeat
    if ((rc == 0)); then
        if [[ -t 2 ]]; then
            printf 'done in %ss\n' "$(since "$t0")" >&2
        else
            log "$desc... done in $(since "$t0")s"
        fi
    else
        [[ -t 2 ]] && printf '\n' >&2
        log "$desc... FAILED (exit $rc) after $(since "$t0")s; end of $LOG_FILE:"
        tail -n 25 "$LOG_FILE" | sed 's/^/    /' >&2
    fi
    return "$rc"
}

on_exit() {
    local rc=$?
    stop_heartbeat
    if ((rc != 0)); then
        log "failed (exit $rc); full log: $LOG_FILE"
    fi
}

# --------------------------------------------------------------------------
# preconditions
# --------------------------------------------------------------------------

skip_if_external_db() {
    if [[ -n ${ASBUILT_DB_DSN:-} ]]; then
        log "ASBUILT_DB_DSN is set: using that existing TimescaleDB, nothing to install"
        exit 0
    fi
}

ensure_root() {
    ((EUID == 0)) && return 0
    if command -v sudo >/dev/null 2>&1; then
        log "not root: re-running through sudo"
        # Ask for a password only where someone can type it; elsewhere fail at once.
        local prompt=-n
        [[ -t 0 ]] && prompt=
        exec sudo ${prompt:+"$prompt"} -- bash "$(readlink -f "${BASH_SOURCE[0]}")" "$@"
    fi
    die 1 "must run as root (and sudo is not installed); run it as root, or set ASBUILT_DB_DSN to an existing TimescaleDB"
}

# Sets OS_ID, OS_VERSION_ID, OS_CODENAME; exits 2 on an unsupported system.
detect_os() {
    local ID="" VERSION_ID="" VERSION_CODENAME="" PRETTY_NAME=""
    local release=${ASBUILT_OS_RELEASE:-/etc/os-release}  # overridable for the tests
    # shellcheck disable=SC1090
    [[ -r $release ]] && . "$release"
    OS_ID=$ID
    OS_VERSION_ID=$VERSION_ID
    OS_CODENAME=$VERSION_CODENAME
    if [[ $OS_ID != debian || ! $OS_VERSION_ID =~ ^(12|13)$ ]]; then
        die 2 "unsupported OS '${PRETTY_NAME:-${OS_ID:-unknown} ${OS_VERSION_ID}}':" \
            "this script supports Debian 12 (bookworm) and Debian 13 (trixie) only." \
            "Elsewhere, run TimescaleDB yourself (PostgreSQL + timescaledb extension)" \
            "and set ASBUILT_DB_DSN=postgresql://user:pass@host:port/db to use it."
    fi
}

take_lock() {
    # Two concurrent runs (e.g. parallel test workers) must not both build.
    mkdir -p "$CACHE_ROOT" "$(dirname "$LOCK_FILE")"
    exec 9>"$LOCK_FILE"
    if ! flock -n 9; then
        log "another install-timescaledb run is in progress; waiting for it"
        flock 9
    fi
}

# --------------------------------------------------------------------------
# apt helpers (system apt configuration, read-only)
# --------------------------------------------------------------------------

in_dir() { # in_dir DIR CMD [ARGS...]: apt-get source/download write to the cwd
    local dir=$1
    shift
    (cd "$dir" && "$@")
}

is_installed() { # is_installed PKG
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

apt_failed_reason() { # the most telling line of the last apt run in the log
    local lines
    lines=$(tail -n 40 "$LOG_FILE")
    { grep -E '^E: ' <<<"$lines" || grep -E '^(W|Err):' <<<"$lines" || echo "apt failed"; } | head -n 1
}

# apt-get update, at most once per run and only when something must be
# fetched.  --error-on=any: otherwise apt exits 0 on an unreachable archive.
apt_update_once() {
    ((APT_UPDATED)) && return 0
    if ! step "apt-get update" apt-get update --error-on=any; then
        die 1 "cannot reach the Debian package archive configured in /etc/apt:" \
            "$(apt_failed_reason); fix the network or set ASBUILT_DB_DSN to an existing TimescaleDB"
    fi
    APT_UPDATED=1
}

# Clusters that are online, one "version name port" a line.
online_clusters() {
    command -v pg_lsclusters >/dev/null 2>&1 || return 0
    pg_lsclusters -h 2>/dev/null | awk '$4 ~ /^online/ { print $1, $2, $3 }'
}

all_clusters() {
    command -v pg_lsclusters >/dev/null 2>&1 || return 0
    pg_lsclusters -h 2>/dev/null | awk '{ print $1, $2 }'
}

# Before postgresql-common exists, tell it not to create (and start) a
# "main" cluster on 5432 when the server package is installed: asbuilt runs
# its own throwaway clusters and must not fight a system one for the port.
disable_main_cluster_creation() {
    is_installed postgresql-common && return 0
    local conf=/etc/postgresql-common/createcluster.conf
    mkdir -p "$(dirname "$conf")"
    if [[ -f $conf ]] && grep -qE '^\s*create_main_cluster\s*=' "$conf"; then
        sed -i -E 's/^\s*create_main_cluster\s*=.*/create_main_cluster = false/' "$conf"
    else
        printf 'create_main_cluster = false\n' >>"$conf"
    fi
    log "wrote 'create_main_cluster = false' to $conf (no system cluster on 5432)"
}

# If postgresql-common was already installed, installing a server package
# creates a "main" cluster (and may start it).  Such a new cluster is stopped
# and set to start "manual", so nothing of ours sits on 5432 now or after a
# reboot.  A cluster that existed before is a user's: it is never deleted, and
# only stopped if the install started it.
tame_clusters_made_by_install() { # tame_... "ONLINE_BEFORE" "ALL_BEFORE"
    local online_before=$1 all_before=$2 ver name port rest
    while read -r ver name port; do
        [[ -z $ver ]] && continue
        grep -qxF "$ver $name $port" <<<"$online_before" && continue
        log "the install started cluster $ver/$name on port $port: stopping it"
        pg_ctlcluster "$ver" "$name" stop >>"$LOG_FILE" 2>&1 || true
    done <<<"$(online_clusters)"
    while read -r ver name rest; do
        [[ -z $ver ]] && continue
        grep -qxF "$ver $name" <<<"$all_before" && continue
        if [[ -f /etc/postgresql/$ver/$name/start.conf ]]; then
            echo manual >"/etc/postgresql/$ver/$name/start.conf"
            log "the install created cluster $ver/$name: set it to start manually (not at boot)"
        fi
    done <<<"$(all_clusters)"
}

# apt_install PKG[=VERSION]... : installs the ones not installed yet.
apt_install() {
    local spec missing=()
    for spec in "$@"; do
        is_installed "${spec%%=*}" || missing+=("$spec")
    done
    ((${#missing[@]})) || return 0

    local online_before all_before
    online_before=$(online_clusters)
    all_before=$(all_clusters)
    disable_main_cluster_creation
    apt_update_once
    # confold: keep our createcluster.conf if postgresql-common's ucf asks.
    step "installing ${missing[*]}" \
        env DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 \
        apt-get install -y --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}"
    tame_clusters_made_by_install "$online_before" "$all_before"
}

# --------------------------------------------------------------------------
# Debian 13: packaged
# --------------------------------------------------------------------------

install_trixie() {
    PG_MAJOR=17
    if is_installed postgresql-17 && is_installed postgresql-17-timescaledb; then
        log "postgresql-17 and postgresql-17-timescaledb already installed"
        return 0
    fi
    apt_install postgresql-17 postgresql-17-timescaledb
}

# --------------------------------------------------------------------------
# Debian 12: build trixie's source package against PostgreSQL 15
# --------------------------------------------------------------------------

# The Debian mirror this machine already uses, from its own apt configuration:
# the first entry for the release's main suite (e.g. "bookworm ... main"),
# else the first one that is not a -security one.
debian_mirror() {
    local codename=$1 files=() f
    [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] && files+=("$f")
    done
    ((${#files[@]})) || return 1
    # Emits "URI SUITE COMPONENTS..." for every binary (deb) source.
    awk '
        function flush() {
            if (types ~ /(^| )deb( |$)/ && enabled != "no")
                for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
                    print u[i], s[j], comps
            types = ""; enabled = ""; comps = ""; nu = 0; ns = 0
        }
        FNR == 1 { flush() }
        FILENAME ~ /\.sources$/ {
            if ($0 ~ /^[ \t]*$/) { flush(); next }
            if ($0 ~ /^#/) next
            key = tolower($1)
            if (key == "types:") { $1 = ""; types = $0 " " }
            else if (key == "uris:") for (k = 2; k <= NF; k++) u[++nu] = $k
            else if (key == "suites:") for (k = 2; k <= NF; k++) s[++ns] = $k
            else if (key == "components:") { $1 = ""; comps = $0 }
            else if (key == "enabled:") enabled = tolower($2)
            next
        }
        /^[ \t]*deb[ \t]/ {
            line = $0
            gsub(/\[[^]]*\]/, "", line)       # drop [options]
            n = split(line, w, /[ \t]+/)
            k = (w[1] == "") ? 2 : 1           # leading blank
            c = ""; for (m = k + 3; m <= n; m++) c = c " " w[m]
            print w[k + 1], w[k + 2], c
        }
        END { flush() }
    ' "${files[@]}" | awk -v cn="$codename" '
        $1 ~ /^cdrom:/ { next }
        { sub(/\/+$/, "", $1) }
        $2 == cn && / main( |$)/ { print $1; found = 1; exit }
        !fallback && $2 !~ /-security$/ && $1 !~ /security/ { fallback = $1 }
        END { if (!found && fallback) print fallback }
    '
}

# "2.19.3" if this script's build is installed for the PostgreSQL at $PG_CONFIG.
installed_build_version() {
    local sharedir pkglibdir stamp ver
    sharedir=$("$PG_CONFIG" --sharedir)
    pkglibdir=$("$PG_CONFIG" --pkglibdir)
    stamp=$sharedir/extension/$STAMP_NAME
    [[ -r $stamp ]] || return 1
    ver=$(<"$stamp")
    grep -qE "^default_version = '${ver//./\\.}'" "$sharedir/extension/timescaledb.control" 2>/dev/null || return 1
    [[ -f $pkglibdir/timescaledb-$ver.so && -f $pkglibdir/timescaledb.so ]] || return 1
    echo "$ver"
}

# The private apt configuration: trixie's source index only, in $WORK_DIR.
private_apt() {
    apt-get \
        -oDir::Etc::SourceList="$WORK_DIR/sources.list" \
        -oDir::Etc::SourceParts=/dev/null \
        -oDir::State::Lists="$WORK_DIR/lists" \
        -oDir::Cache="$WORK_DIR/cache" \
        -oAPT::Sandbox::User=root \
        "$@"
}

fetch_timescaledb_source() {
    local mirror
    mirror=$(debian_mirror "$OS_CODENAME") ||
        die 1 "found no Debian mirror in /etc/apt/sources.list{,.d}; set ASBUILT_DB_DSN to an existing TimescaleDB"
    [[ -n $mirror ]] || die 1 "found no Debian mirror in /etc/apt/sources.list{,.d}; set ASBUILT_DB_DSN to an existing TimescaleDB"
    [[ -r $KEYRING ]] || die 1 "$KEYRING is missing (package debian-archive-keyring)"

    rm -rf "$WORK_DIR"
    mkdir -p "$WORK_DIR/lists/partial" "$WORK_DIR/cache/archives/partial" "$WORK_DIR/dl"
    # bookworm's keyring already holds trixie's archive keys.
    printf 'deb-src [signed-by=%s] %s trixie main\n' "$KEYRING" "$mirror" >"$WORK_DIR/sources.list"
    log "using Debian mirror $mirror (from /etc/apt) for trixie's timescaledb source"

    if ! step "fetching trixie's source index (private apt config in $WORK_DIR)" \
        private_apt update --error-on=any; then
        die 1 "cannot reach the Debian package archive configured in /etc/apt ($mirror):" \
            "$(apt_failed_reason); fix the network or set ASBUILT_DB_DSN to an existing TimescaleDB"
    fi
    step "downloading source package timescaledb/trixie" \
        in_dir "$WORK_DIR/dl" private_apt source --download-only timescaledb/trixie
    local dsc
    dsc=$(find "$WORK_DIR/dl" -maxdepth 1 -name 'timescaledb_*.dsc' | head -n 1)
    [[ -n $dsc ]] || die 1 "apt-get source left no timescaledb .dsc in $WORK_DIR/dl"
    step "unpacking $(basename "$dsc")" dpkg-source -x "$dsc" "$WORK_DIR/src"
    TSDB_VERSION=$(sed -nE 's/^version = ([0-9][0-9.]*).*/\1/p' "$WORK_DIR/src/version.config")
    [[ -n $TSDB_VERSION ]] || die 1 "cannot read the version from $WORK_DIR/src/version.config"
}

# Server headers for exactly the installed postgresql-15: download the
# postgresql-server-dev-15 .deb and unpack it in $WORK_DIR.  Installing the
# package instead would pull ~90 MiB of clang/llvm, and an unpinned install
# would upgrade the server as well.
fetch_server_headers() {
    local pkg=postgresql-server-dev-$PG_MAJOR ver
    ver=$(dpkg-query -W -f='${Version}' "postgresql-$PG_MAJOR")
    mkdir -p "$WORK_DIR/debs"
    local dl=(in_dir "$WORK_DIR/debs" apt-get -oAPT::Sandbox::User=root download)
    if ! step "downloading $pkg=$ver (headers only)" "${dl[@]}" "$pkg=$ver"; then
        # The local apt lists may be stale or missing: refresh them once.
        apt_update_once
        if ! step "downloading $pkg=$ver (headers only)" "${dl[@]}" "$pkg=$ver"; then
            # The archive moved on (e.g. a point release): the minor versions
            # of one major are ABI-compatible for extensions.
            log "WARNING: $pkg=$ver is no longer in the archive; using its current version"
            step "downloading $pkg (headers only)" "${dl[@]}" "$pkg"
        fi
    fi
    step "unpacking $pkg headers" dpkg-deb -x "$(find "$WORK_DIR/debs" -name "${pkg}_*.deb" | head -n 1)" "$WORK_DIR/pgdev"
    PG_SERVER_HEADERS=$WORK_DIR/pgdev/usr/include/postgresql/$PG_MAJOR/server
    [[ -f $PG_SERVER_HEADERS/pg_config.h ]] || die 1 "no pg_config.h in $PG_SERVER_HEADERS"
}

build_timescaledb() {
    # APACHE_ONLY: Debian strips the TSL sources.  Regress/TAP tests need a
    # PostgreSQL source tree and are not wanted here.  PG_INCLUDEDIR also
    # points at the server headers (it holds pg_config.h), so libpq-dev is not
    # needed.
    step "configuring timescaledb $TSDB_VERSION (cmake)" \
        cmake -S "$WORK_DIR/src" -B "$WORK_DIR/build" \
        -DCMAKE_BUILD_TYPE=Release \
        -DPG_CONFIG="$PG_CONFIG" \
        -DPG_INCLUDEDIR="$PG_SERVER_HEADERS" \
        -DPG_INCLUDEDIR_SERVER="$PG_SERVER_HEADERS" \
        -DAPACHE_ONLY=ON -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
        -DWARNINGS_AS_ERRORS=OFF -DUSE_TELEMETRY=OFF -DSEND_TELEMETRY_DEFAULT=OFF
    step "building timescaledb $TSDB_VERSION (cmake -j$BUILD_JOBS)" \
        cmake --build "$WORK_DIR/build" -j "$BUILD_JOBS"
    step "installing timescaledb $TSDB_VERSION into $("$PG_CONFIG" --pkglibdir)" \
        cmake --install "$WORK_DIR/build"
    # Written last: it marks a complete install for the next run's check.
    echo "$TSDB_VERSION" >"$("$PG_CONFIG" --sharedir)/extension/$STAMP_NAME"
}

install_bookworm() {
    PG_MAJOR=15
    PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
    apt_install "postgresql-$PG_MAJOR"

    local ver
    if ver=$(installed_build_version); then
        log "timescaledb $ver already built and installed for PostgreSQL $PG_MAJOR"
        return 0
    fi

    # gcc only recommends libc6-dev, and --no-install-recommends is in force.
    # dpkg-dev brings dpkg-source for the source package.  libssl-dev: the
    # server headers include OpenSSL's (PostgreSQL is built with it).
    apt_install cmake make gcc libc6-dev dpkg-dev libssl-dev
    fetch_timescaledb_source
    fetch_server_headers
    build_timescaledb
    rm -rf "$WORK_DIR"   # ~100 MB of sources, objects and apt lists
}

# --------------------------------------------------------------------------

main() {
    local t_start
    t_start=$(now)
    skip_if_external_db
    detect_os
    ensure_root "$@"
    take_lock
    : >"$LOG_FILE"
    trap on_exit EXIT
    log "Debian $OS_VERSION_ID ($OS_CODENAME); step log in $LOG_FILE"

    case $OS_VERSION_ID in
    13) install_trixie ;;
    12) install_bookworm ;;
    esac

    local bindir=/usr/lib/postgresql/$PG_MAJOR/bin
    [[ -x $bindir/postgres ]] || die 1 "$bindir/postgres is missing after the install"
    log "PostgreSQL $PG_MAJOR + TimescaleDB ready in $(since "$t_start")s"
    echo "PG_BINDIR=$bindir"
}

main "$@"
