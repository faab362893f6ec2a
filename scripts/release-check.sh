#!/usr/bin/env bash
# Is the package ready to publish?  scripts/release-check.sh (scripts/test.sh runs it):
#
# 1. builds the sdist and the wheel (python -m build) from a clean copy of the tracked
#    files, and checks their metadata (twine check --strict);
# 2. checks the wheel: its version is smtpx.__version__ (the one place it is written),
#    it ships py.typed, it holds no tests and no stray top-level package;
# 3. on each of Python 3.11, 3.12 and 3.13, in a fresh venv: installs the wheel alone
#    and imports it, then with the `test` extra runs `python -m smtpx demo` and
#    tests/protocol against the installed wheel (not src/), then installs each extra
#    of EXTRAS and runs `pip check`.  An extra the package does not declare (yet) is
#    reported, not failed.
#
# Environment: PYTHON_VERSIONS overrides "3.11 3.12 3.13"; STEP_TIMEOUT (seconds, 600)
# bounds each step.  Needs the network to the package index for build tools and extras.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1

read -r -a PYTHON_VERSIONS <<<"${PYTHON_VERSIONS:-3.11 3.12 3.13}"
EXTRAS=(testing cli django celery docs)
STEP_TIMEOUT=${STEP_TIMEOUT:-600}

started=$SECONDS
log() { printf '\n==> %s  [%ss]\n' "$*" "$((SECONDS - started))"; }
die() {
    printf 'release-check: error: %s\n' "$*" >&2
    exit 1
}
run() { timeout --kill-after=10 "$STEP_TIMEOUT" "$@"; }

find_python() {
    local version=$1 root candidates=()
    root=${PYENV_ROOT:-$HOME/.pyenv}
    command -v pyenv >/dev/null && root=$(pyenv root)
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

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# --- 1. build from the tracked files only (no venvs, caches or dist/ of this tree) ----

log "building the sdist and the wheel"
mkdir "$WORK/src" "$WORK/dist"
git ls-files -z | xargs -0 tar -cf - | tar -xf - -C "$WORK/src"
tools="$WORK/tools"
run "$(find_python "${PYTHON_VERSIONS[0]}")" -m venv "$tools"
run "$tools/bin/pip" install -q "build>=1.2" "twine>=5"
run "$tools/bin/python" -m build --outdir "$WORK/dist" "$WORK/src"
ls -l "$WORK/dist"

log "twine check --strict"
run "$tools/bin/twine" check --strict "$WORK/dist"/*

# --- 2. what the wheel holds ---------------------------------------------------------

shopt -s nullglob
wheels=("$WORK/dist"/smtpx-*-py3-none-any.whl)
sdists=("$WORK/dist"/smtpx-*.tar.gz)
shopt -u nullglob
((${#wheels[@]} == 1 && ${#sdists[@]} == 1)) || die "expected one wheel and one sdist"
WHEEL=${wheels[0]}

log "checking the wheel's contents and version"
"$tools/bin/python" - "$WHEEL" "$ROOT/src/smtpx/__init__.py" <<'PY'
import ast, sys, zipfile

wheel, init = sys.argv[1], sys.argv[2]
tree = ast.parse(open(init, encoding="utf-8").read())
version = next(
    node.value.value
    for node in tree.body
    if isinstance(node, ast.Assign)
    and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)
)
names = zipfile.ZipFile(wheel).namelist()
problems = []
if f"smtpx-{version}-" not in wheel.rsplit("/", 1)[-1]:
    problems.append(f"the wheel's version is not smtpx.__version__ ({version})")
if "smtpx/py.typed" not in names:
    problems.append("smtpx/py.typed is not in the wheel")
tops = {name.split("/", 1)[0] for name in names}
stray = {top for top in tops if top != "smtpx" and not top.endswith(".dist-info")}
if stray:
    problems.append(f"unexpected top-level entries: {sorted(stray)}")
metadata = zipfile.ZipFile(wheel).read(f"smtpx-{version}.dist-info/METADATA").decode()
for field in ("Requires-Python: >=3.11", "License", "Classifier: Typing :: Typed"):
    if field not in metadata:
        problems.append(f"METADATA lacks {field!r}")
if "Project-URL:" not in metadata:
    print("release-check: note: no Project-URL in the metadata (set [project.urls])")
if problems:
    sys.exit("release-check: " + "; ".join(problems))
print(f"wheel {version}: {len(names)} files, py.typed shipped")
PY

declared=$(unzip -p "$WHEEL" '*.dist-info/METADATA' | sed -n 's/^Provides-Extra: //p' | tr '\n' ' ')
present=() absent=()
for extra in "${EXTRAS[@]}"; do
    if [[ " $declared " == *" $extra "* ]]; then present+=("$extra"); else absent+=("$extra"); fi
done
((${#absent[@]} == 0)) || printf 'release-check: note: extras not declared yet: %s\n' "${absent[*]}"

# --- 3. a fresh venv per Python ------------------------------------------------------

for version in "${PYTHON_VERSIONS[@]}"; do
    venv="$WORK/venv-$version"
    log "Python $version: the wheel alone"
    run "$(find_python "$version")" -m venv "$venv"
    run "$venv/bin/pip" install -q "$WHEEL"
    (cd "$WORK" && run "$venv/bin/python" -c \
        "import smtpx, sys; assert 'site-packages' in smtpx.__file__, smtpx.__file__; print('smtpx', smtpx.__version__, 'from', smtpx.__file__)")
    (cd "$WORK" && run "$venv/bin/smtpx" --version)

    log "Python $version: the demo and tests/protocol against the installed wheel"
    run "$venv/bin/pip" install -q "$WHEEL[test]"
    (cd "$WORK" && run "$venv/bin/python" -bb -W error -m smtpx demo >/dev/null)
    # From outside the tree, with -P (no current directory on sys.path) so the installed
    # package is the one tested.
    (cd "$WORK" && run "$venv/bin/python" -P -bb -m pytest -W error -q -p no:cacheprovider \
        --rootdir "$ROOT" "$ROOT/tests/protocol")

    for extra in "${present[@]}"; do
        log "Python $version: installing the $extra extra"
        run "$venv/bin/pip" install -q "$WHEEL[$extra]"
    done
    run "$venv/bin/pip" check
done

log "release check passed"
