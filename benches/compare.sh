#!/usr/bin/env bash
# Runs the same workloads in rhaiflow and in OpenStack TaskFlow, side by side, and prints a
# table of per-task times (see docs/PERFORMANCE.md). On a fresh machine it creates a Python
# venv and installs TaskFlow from PyPI first.
#
#   benches/compare.sh                      # N = 1,000 / 10,000 / 100,000, rhaiflow alone at 1,000,000
#   SIZES=1000 TIMEOUT=60 benches/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-target/taskflow-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import taskflow" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet taskflow
fi
cargo build --release --quiet
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT
echo "TaskFlow $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("taskflow"))'), rhaiflow $(target/release/rhaiflow --version | cut -d' ' -f2), $(nproc) cores"
python3 benches/compare/compare.py --rhaiflow target/release/rhaiflow --python "$venv/bin/python" \
    --sizes "${SIZES:-1000,10000,100000}" --rhaiflow-only "${RHAIFLOW_ONLY:-1000000}" \
    --timeout "${TIMEOUT:-300}" --store "$store"
