#!/usr/bin/env bash
# Install code-server 4.99.4 (the last line whose engine is Node 20) into a cache directory
# outside the repository, for the end-to-end tests; reused when already complete.
# Offline-safe: npm packages only, native modules built against the system's Node headers,
# ripgrep from Debian (code-server's own postinstall would download a binary).
set -euo pipefail
VERSION=4.99.4
DEST="${PORTSIDE_CODE_SERVER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/portside-test/code-server-$VERSION}"
ENTRY="$DEST/node_modules/code-server/out/node/entry.js"
if [ -f "$DEST/.complete" ] && [ -f "$ENTRY" ]; then
  echo "$DEST"
  exit 0
fi
log() { echo "install-code-server: $*" >&2; }
GYP=""
for g in /usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js \
         "$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"; do
  if [ -f "$g" ]; then GYP="$g"; break; fi
done
[ -n "$GYP" ] || { log "node-gyp not found next to npm"; exit 1; }
command -v rg >/dev/null || { log "ripgrep (rg) is needed: apt-get install ripgrep"; exit 1; }
rm -rf "$DEST"
mkdir -p "$DEST"
cd "$DEST"
echo '{"name":"portside-code-server","private":true}' > package.json
log "npm install code-server@$VERSION"
npm install --no-audit --no-fund --ignore-scripts "code-server@$VERSION" >&2
cd node_modules/code-server/lib/vscode
log "npm install (vscode runtime deps)"
npm install --no-audit --no-fund --omit=dev --ignore-scripts >&2
for m in node-pty @vscode/spdlog native-watchdog @parcel/watcher kerberos @vscode/deviceid; do
  log "build $m"
  (cd "node_modules/$m" && node "$GYP" rebuild --nodedir=/usr >&2)
done
mkdir -p node_modules/@vscode/ripgrep/bin
cp "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
ln -sfn node_modules node_modules.asar
log "npm install (built-in extensions)"
(cd extensions && npm install --no-audit --no-fund --omit=dev --ignore-scripts >&2)
cd "$DEST"
log "npm rebuild argon2"
npm rebuild argon2 >&2
touch "$DEST/.complete"
echo "$DEST"
