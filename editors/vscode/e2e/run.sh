#!/usr/bin/env bash
# End to end in a real VS Code, by hand: what tests/test_vscode_e2e.py runs in the test suite.
# code-server (VS Code 1.100 in a browser) + Debian's headless Chromium + playwright-core, with
# the packaged .vsix, the real ghostfill server and the default model, default settings.
#
#   bash e2e/run.sh                       # from editors/vscode, after `npm ci && npm run package`
#   E2E_CASES=ghost,tab bash e2e/run.sh   # some of the cases (see e2e/run.mjs)
#   E2E_TRACE=1 bash e2e/run.sh           # every LSP message in the extension's trace log
#
# scripts/vscode_e2e_deps.sh installs what it needs (apt: chromium, ripgrep, -dev packages;
# npm: code-server and playwright-core into ~/.cache/ghostfill/code-server/<version>).
# Screenshots, the extension's logs and report.json go to $ARTIFACTS
# (default ../../tests/artifacts/vscode).
set -euo pipefail
cd "$(dirname "$0")/.."
E2E_DEPS=$(bash ../../scripts/vscode_e2e_deps.sh)
export E2E_DEPS
exec node e2e/run.mjs
