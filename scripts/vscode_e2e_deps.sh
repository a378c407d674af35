#!/usr/bin/env bash
# What the VS Code end-to-end tests (tests/test_vscode_e2e.py) need besides the .vsix: Debian's
# Chromium and ripgrep and the -dev packages code-server's native modules build against (apt),
# and code-server + playwright-core (npm), installed once per version into the user cache and
# reused afterwards. Prints the install folder (its node_modules holds both) on stdout;
# everything else goes to stderr. scripts/test.sh runs it before pytest, outside pytest's
# per-test timeout; a failed install stops the run.
#
#   bash scripts/vscode_e2e_deps.sh        # -> ~/.cache/ghostfill/code-server/4.100.3
#
# Environment: GHOSTFILL_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/ghostfill),
# GHOSTFILL_E2E_APT=0 to skip the apt step (then the packages must be there already).
#
# Why by hand: code-server's own postinstall downloads ripgrep from GitHub, which CI cannot
# reach. So it is installed with --ignore-scripts and finished here the way its postinstall.sh
# would: VS Code's dependencies, Debian's rg in place of the download, the native modules built
# from source against the installed Node's headers, and the symlinks.
set -euo pipefail

CODE_SERVER_VERSION=4.100.3   # the newest code-server whose engines field accepts Node 20
PLAYWRIGHT_VERSION=1.65.1
APT_PACKAGES=(chromium ripgrep libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev
              g++ make python3 pkg-config)

say() { echo "vscode_e2e_deps.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# -- apt ------------------------------------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' \
    || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  [ "${GHOSTFILL_E2E_APT:-1}" != 0 ] || die "missing Debian packages: ${missing[*]} (GHOSTFILL_E2E_APT=0)"
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "missing ${missing[*]}: run as root or install them"
    sudo=(sudo)
  fi
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq >&2 || die "apt-get update failed"
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
    || die "apt-get install ${missing[*]} failed"
fi
command -v chromium >/dev/null || die "no chromium after the apt step"
command -v rg >/dev/null || die "no rg after the apt step"
command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are needed"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" = 20 ] || die "code-server $CODE_SERVER_VERSION needs Node 20, found $(node --version)"

# -- code-server + playwright-core ------------------------------------------------------------
cache="${GHOSTFILL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ghostfill}/code-server"
dest="$cache/$CODE_SERVER_VERSION"

usable() {
  [ -f "$dest/.complete" ] && [ -x "$dest/node_modules/.bin/code-server" ] \
    && [ -f "$dest/node_modules/playwright-core/package.json" ]
}

if usable; then
  echo "$dest"
  exit 0
fi

mkdir -p "$cache"
# One install at a time; the loser reuses the winner's.
exec 9>"$cache/.lock"
flock 9
if usable; then
  echo "$dest"
  exit 0
fi

started=$(date +%s)
work="$cache/.partial-$CODE_SERVER_VERSION-$$"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
say "installing code-server $CODE_SERVER_VERSION and playwright-core $PLAYWRIGHT_VERSION into $dest (~2-4 min)"
# node-gyp would download Node's headers (nodejs.org is out of reach); use the installed ones.
node_prefix=$(dirname "$(dirname "$(command -v node)")")
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$node_prefix/include/node/node.h" ]; then
  export npm_config_nodedir="$node_prefix"
fi
export npm_config_unsafe_perm=true npm_config_audit=false npm_config_fund=false \
  npm_config_update_notifier=false npm_config_loglevel=error
cd "$work"
# npm's output goes to stderr; stdout is only the folder, at the end.
exec 3>&1 1>&2
trap 'say "installing code-server into $work failed (see the npm output above)"' ERR
# Its own package root, so npm does not walk up into another package.json.
printf '{ "private": true, "dependencies": { "code-server": "%s", "playwright-core": "%s" } }\n' \
  "$CODE_SERVER_VERSION" "$PLAYWRIGHT_VERSION" > package.json
npm install --ignore-scripts
npm rebuild argon2 --build-from-source
(
  cd node_modules/code-server/lib/vscode
  npm install --omit=dev --ignore-scripts
  mkdir -p node_modules/@vscode/ripgrep/bin
  cp "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
  # node-pty's post-build step fetches node-gyp with npx and fails offline; the module itself
  # is built by then, which the tests below check.
  npm rebuild kerberos @vscode/spdlog @vscode/deviceid native-watchdog node-pty || true
  test -f node_modules/node-pty/build/Release/pty.node
  test -n "$(find node_modules/@vscode/spdlog/build -name '*.node' -print -quit)"
  ln -sfn node_modules node_modules.asar
  cd bin/remote-cli && ln -sf code-linux.sh code-server && cd ../..
  cd bin/helpers && ln -sf browser-linux.sh browser.sh && cd ../..
  cd extensions
  npm install --omit=dev --ignore-scripts
)
# (--config: its own, or code-server writes a default one into ~/.config)
node_modules/.bin/code-server --config "$work/.version-check.yaml" --version
touch .complete
cd "$cache"
rm -rf "$dest"
mv "$work" "$dest"
trap - EXIT ERR
exec 1>&3 3>&-
say "installed in $(( $(date +%s) - started )) s"
echo "$dest"
