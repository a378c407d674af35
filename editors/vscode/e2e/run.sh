#!/usr/bin/env bash
# End to end in a real VS Code: code-server (VS Code 1.100 in a browser) + Debian's headless
# Chromium + playwright-core, with the freshly packaged .vsix and the real ghostfill server.
#
#   bash e2e/run.sh            # from editors/vscode, after `npm ci && npm run package`
#   BUDGET_MS=1 bash e2e/run.sh  # every first answer empty: ghost text only comes through
#                                # ghostfill/suggestionReady and the extension asking again
#
# Needs (Debian): chromium ripgrep libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev, and
# `ghostfill` in ../../.venv (or GHOSTFILL_SERVER=/path/to/ghostfill). Everything else goes into
# e2e/.work. code-server's own postinstall downloads ripgrep from GitHub, which is unreachable
# here, so it is installed with --ignore-scripts and finished by hand: Debian's rg in place of
# the download, and the native modules rebuilt from source.
set -euo pipefail
cd "$(dirname "$0")/.."
EXT_DIR=$(pwd)
WORK="$EXT_DIR/e2e/.work"
CODE_SERVER_VERSION=4.100.3   # the newest code-server whose engines field accepts Node 20
PORT=${PORT:-8123}
SERVER=${GHOSTFILL_SERVER:-$EXT_DIR/../../.venv/bin/ghostfill}
VSIX=$(ls -t "$EXT_DIR"/ghostfill-*.vsix | head -1)
mkdir -p "$WORK"
cd "$WORK"
# Its own package root: without one, npm would install into editors/vscode's package.json.
[ -f package.json ] || echo '{ "private": true }' > package.json

if [ ! -x node_modules/.bin/code-server ]; then
  npm_config_unsafe_perm=true npm install --no-audit --no-fund --ignore-scripts \
    "code-server@$CODE_SERVER_VERSION" playwright-core@1.65.1
  npm rebuild argon2 --build-from-source
  (
    cd node_modules/code-server/lib/vscode
    npm install --omit=dev --ignore-scripts --no-audit --no-fund
    mkdir -p node_modules/@vscode/ripgrep/bin
    cp "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
    # node-pty's post-install step after the build fetches node-gyp with npx and fails
    # offline; the module itself is built by then.
    npm rebuild kerberos @vscode/spdlog @vscode/deviceid native-watchdog node-pty || true
    test -f node_modules/node-pty/build/Release/pty.node
    ln -sfn node_modules node_modules.asar
    (cd bin/remote-cli && ln -sf code-linux.sh code-server)
    (cd bin/helpers && ln -sf browser-linux.sh browser.sh)
    (cd extensions && npm install --omit=dev --ignore-scripts --no-audit --no-fund)
  )
fi

rm -rf ud ext ws shots
mkdir -p ud/User ws
printf 'auth: none\ncert: false\n' > config.yaml
# DEFAULTS=1: the editor's and the extension's defaults, as a new user has them (word list on,
# the 150 ms budget); otherwise the word list is off and the budget generous.
if [ "${DEFAULTS:-0}" = 1 ]; then
  EDITOR_SETTINGS=''
else
  EDITOR_SETTINGS='"ghostfill.completion.latencyBudgetMs": '"${BUDGET_MS:-30000}"',
  "editor.quickSuggestions": { "other": "off", "comments": "off", "strings": "off" },
  "editor.wordBasedSuggestions": "off",'
fi
cat > ud/User/settings.json <<JSON
{
  $EDITOR_SETTINGS
  "ghostfill.serverPath": "$SERVER",
  "workbench.startupEditor": "none",
  "security.workspace.trust.enabled": false,
  "telemetry.telemetryLevel": "off",
  "extensions.autoUpdate": false
}
JSON
cp "$EXT_DIR/../../examples/stats.py" ws/stats.py
CS=(node_modules/.bin/code-server --config "$WORK/config.yaml" --user-data-dir "$WORK/ud"
    --extensions-dir "$WORK/ext")
"${CS[@]}" --install-extension "$VSIX" --force
"${CS[@]}" --bind-addr "127.0.0.1:$PORT" --disable-telemetry --disable-update-check \
  --disable-workspace-trust "$WORK/ws" > code-server.log 2>&1 &
CS_PID=$!
trap 'kill $CS_PID 2>/dev/null || true' EXIT
for _ in $(seq 60); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
  sleep 1
done
# Run from $WORK so that `import 'playwright-core'` resolves to $WORK/node_modules.
cp "$EXT_DIR/e2e/ghost-text.mjs" "$WORK/ghost-text.mjs"
CODE_SERVER_URL="http://127.0.0.1:$PORT" WORKSPACE="$WORK/ws" SHOTS="$WORK/shots" \
  node "$WORK/ghost-text.mjs"
