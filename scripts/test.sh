#!/usr/bin/env bash
# The one command that checks everything, on a fresh Debian machine, as root:
#
#   scripts/test.sh [PYTEST ARGS...]
#
# 1. installs Postfix, Dovecot (LMTP and SASL), Redis and Node.js (apt) if they are
#    missing, and Haraka (npm, pinned) into tests/integration/servers/haraka-node;
#    the tests start their own private instances on loopback, never system ones;
# 2. creates .venv-3.11 and .venv-3.13 (and .venv-3.12 for the compatibility
#    suite) from pyenv's Pythons and installs smtpx with its [dev] extra;
# 3. runs ruff check, ruff format --check, mypy --strict (once, on 3.11) and
#    the whole pytest suite with -bb and -W error on each Python version, under
#    coverage: lines and branches of both runs combined must stay above floors;
#    then tests/compat on 3.12; builds the documentation site (mkdocs build --strict);
# 4. runs scripts/release-check.sh: the built wheel in fresh venvs on 3.11 to 3.13.
#
# Every check runs even if an earlier one failed; the exit status is non-zero
# if any failed. Extra arguments go to pytest (e.g. `-k postfix -x`).
# Environment: CI (set by CI) makes missing server software a test failure
# instead of a skip; PYTHON_VERSIONS overrides "3.11 3.13".

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Debian keeps postfix, postconf and dovecot in sbin, which a non-login PATH lacks.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1

read -r -a PYTHON_VERSIONS <<<"${PYTHON_VERSIONS:-3.11 3.13}"
LINT_VERSION=${PYTHON_VERSIONS[0]}
SERVER_PACKAGES=(postfix dovecot-core dovecot-lmtpd redis-server)

started=$SECONDS
log() { printf '\n==> %s  [%ss]\n' "$*" "$((SECONDS - started))"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}
in_ci() { [[ -n "${CI:-}" && "${CI,,}" != "false" && "${CI}" != "0" ]]; }

# --- 1. server software ------------------------------------------------------

just_installed=false
installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }

install_servers() {
    local missing=() package
    for package in "${SERVER_PACKAGES[@]}"; do
        installed "$package" || missing+=("$package")
    done
    if ((${#missing[@]} == 0)); then
        log "server packages present: ${SERVER_PACKAGES[*]}"
        return
    fi
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        in_ci && die "missing ${missing[*]} and cannot apt-get install them (need root on Debian)"
        printf 'warning: missing %s; their integration tests will be skipped\n' "${missing[*]}" >&2
        return
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Postfix's debconf question would otherwise block; we configure our own instance.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
    just_installed=true
}

# The packages' own services may start on install (port 25, /run/dovecot).
# The tests never use them, so keep them off.
stop_system_services() {
    log "stopping the system Postfix/Dovecot/Redis services if they run"
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
        systemctl disable --now postfix.service dovecot.service redis-server.service 2>/dev/null || true
    elif command -v service >/dev/null && [[ -x /etc/init.d/redis-server ]]; then
        service redis-server stop >/dev/null 2>&1 || true
    fi
    if [[ -f /etc/postfix/main.cf ]] && postfix status >/dev/null 2>&1; then
        postfix stop || true
    fi
    local pidfile=/run/dovecot/master.pid
    if [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        dovecot stop 2>/dev/null || kill "$(cat "$pidfile")" || true
    fi
}

install_servers
if $just_installed || in_ci; then
    stop_system_services
fi

# Haraka (Node.js), the server that answers 503 to commands pipelined after end of
# DATA: node and npm from apt if missing, then the version pinned by package-lock.json
# into haraka-node/node_modules (git-ignored; no global install, no install scripts).
# Reinstalled when the lock file is newer than the install. Nothing is started here.
HARAKA_DIR=tests/integration/servers/haraka-node
install_haraka() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
            in_ci && die "Haraka needs node and npm, and cannot apt-get install them (need root on Debian)"
            printf 'warning: no node/npm; the Haraka tests will be skipped\n' >&2
            return
        fi
        log "installing nodejs npm"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm </dev/null
    fi
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    ((major >= 20)) || die "Haraka 3.3 needs Node.js 20 or later, found $(node --version)"
    if [[ -f $HARAKA_DIR/node_modules/.package-lock.json &&
        ! $HARAKA_DIR/package-lock.json -nt $HARAKA_DIR/node_modules/.package-lock.json ]]; then
        log "Haraka present in $HARAKA_DIR"
        return
    fi
    log "installing Haraka (npm ci) into $HARAKA_DIR"
    (cd "$HARAKA_DIR" && npm ci --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error)
    log "Haraka installed"
}
install_haraka

# --- 2. virtual environments -------------------------------------------------

find_python() {
    local version=$1 root candidates=()
    if command -v pyenv >/dev/null; then
        root=$(pyenv root)
    else
        root=${PYENV_ROOT:-$HOME/.pyenv}
    fi
    shopt -s nullglob
    candidates=("$root"/versions/"$version".*/bin/python"$version")
    shopt -u nullglob
    if ((${#candidates[@]})); then
        printf '%s\n' "${candidates[@]}" | sort -V | tail -n 1
    elif command -v "python$version" >/dev/null; then
        command -v "python$version"
    else
        die "no Python $version (looked in $root/versions and on PATH)"
    fi
}

make_venv() {
    local version=$1 venv=".venv-$1" python
    if ! "$venv/bin/python" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$version'.split('.'))))" 2>/dev/null; then
        python=$(find_python "$version")
        log "creating $venv with $python"
        rm -rf "$venv"
        "$python" -m venv "$venv"
    fi
    # The documentation tools go into the lint venv only: the site is built once.
    local extras=dev
    [[ $version == "$LINT_VERSION" ]] && extras=dev,docs
    log "installing smtpx[$extras] into $venv"
    "$venv/bin/python" -m pip install -q -e ".[$extras]"
}

for version in "${PYTHON_VERSIONS[@]}"; do
    make_venv "$version"
done
# smtplib's namespace differs between Python versions (tests/compat derives what it checks
# from the running interpreter): the compatibility suite also runs on 3.12, in between.
COMPAT_ONLY_VERSIONS=()
if [[ " ${PYTHON_VERSIONS[*]} " != *" 3.12 "* ]] && (($# == 0)); then
    COMPAT_ONLY_VERSIONS=(3.12)
    make_venv 3.12
fi

# --- 3. checks ---------------------------------------------------------------

failures=()
check() {
    local name=$1 status=0
    shift
    log "$name"
    "$@" || status=$?
    if ((status != 0)); then
        failures+=("$name (exit status $status)")
    fi
}

lint=".venv-$LINT_VERSION/bin"
check "ruff check" "$lint/ruff" check .
check "ruff format --check" "$lint/ruff" format --check .
check "mypy --strict src" "$lint/mypy" --strict src
# The documentation site: any warning fails (broken links and anchors, a page missing
# from the nav, a docstring that does not render). Its examples run in tests/docs.
site_dir=$(mktemp -d)
check "mkdocs build --strict" env NO_MKDOCS_2_WARNING=1 "$lint/mkdocs" build --strict --quiet --site-dir "$site_dir"
rm -rf "$site_dir"

# Coverage: each Python's run is recorded under coverage (settings in pyproject.toml:
# branches on, one data file per run), then the runs are combined, so a line that only
# one version executes counts.  The floors sit just below what the whole suite measured
# (91.8% of lines, 82.8% of branches): raise them when tests are added, never lower them
# to pass.  A run given pytest arguments (-k ...) is partial: coverage shown, no floor.
LINE_FLOOR=91.5 BRANCH_FLOOR=82.5
rm -f .coverage .coverage.*
coverage_report() {
    local python=".venv-$LINT_VERSION/bin/python" json
    json=$(mktemp) && "$python" -m coverage combine -q && "$python" -m coverage report &&
        "$python" -m coverage json -q -o "$json" || return
    "$python" - "$json" "$@" <<'PY'
import json, sys
totals = json.load(open(sys.argv[1]))["totals"]
lines = 100 * totals["covered_lines"] / totals["num_statements"]
branches = 100 * totals["covered_branches"] / max(totals["num_branches"], 1)
print(f"coverage, both Pythons combined: lines {lines:.1f}%, branches {branches:.1f}%")
if len(sys.argv) > 2 and (lines < float(sys.argv[2]) or branches < float(sys.argv[3])):
    sys.exit(f"coverage below the floor: lines {sys.argv[2]}%, branches {sys.argv[3]}%")
PY
    local status=$?
    rm -f "$json"
    return $status
}
for version in "${PYTHON_VERSIONS[@]}"; do
    # pytest exits 5 when it collected no tests: non-zero, so a failure here too.
    # tests/django_backend needs Django: it runs below, once per Django version.
    check "pytest on Python $version" ".venv-$version/bin/python" -bb -m coverage run -m pytest -W error --ignore=tests/django_backend "$@"
done
# smtpx.django against real Django: 5.2 LTS (on 3.11: Django 6 needs 3.12) and 6.1 (on
# 3.13), each installed into its own directory (not the venv: the main runs have no
# Django) and put first on the path for this run only.
for pair in 5.2:3.11 6.1:3.13; do
    django=${pair%%:*} version=${pair##*:} target=.django-${pair%%:*}
    if [[ ! -d .venv-$version ]]; then
        make_venv "$version"
    fi
    if ! PYTHONPATH=$target ".venv-$version/bin/python" -c "import django, sys; sys.exit(django.get_version().rpartition('.')[0] != '$django')" 2>/dev/null; then
        log "installing Django $django.x into $target"
        rm -rf "$target"
        ".venv-$version/bin/python" -m pip install -q --target "$target" "django==$django.*"
    fi
    check "tests/django_backend with Django $django on Python $version" \
        env PYTHONPATH="$target" ".venv-$version/bin/python" -bb -m coverage run -m pytest -W error tests/django_backend
done
for version in "${COMPAT_ONLY_VERSIONS[@]}"; do
    check "tests/compat on Python $version" ".venv-$version/bin/python" -bb -m pytest -W error -q tests/compat
done
# The built sdist and wheel, installed into fresh venvs (a few minutes; skipped when
# pytest arguments ask for a partial run).
if (($# == 0)); then
    check "release check (scripts/release-check.sh)" bash scripts/release-check.sh
fi
if (($#)); then
    check "coverage" coverage_report
else
    check "coverage (floors: lines $LINE_FLOOR%, branches $BRANCH_FLOOR%)" coverage_report "$LINE_FLOOR" "$BRANCH_FLOOR"
fi

log "done"
if ((${#failures[@]})); then
    printf 'FAILED:\n' >&2
    printf '  %s\n' "${failures[@]}" >&2
    exit 1
fi
echo "all checks passed"
