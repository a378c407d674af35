#!/usr/bin/env bash
# Install ghostfill with the embedded default model and complete the sample file.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[cpu,default-model]'
line=$(grep -n '"""Population standard deviation."""' examples/stats.py | cut -d: -f1)
echo "ghostfill complete examples/stats.py:$((line + 1)):5"
.venv/bin/ghostfill complete "examples/stats.py:$((line + 1)):5" --json
