#!/usr/bin/env bash
# The extension in a real VS Code: code-server (VS Code for the browser, from npm, on Node 24) with
# the .vsix installed, driven headless in Debian's chromium by playwright-core (drive.cjs): type
# in a Python file, see the ghost text, Tab, check the saved buffer; explain a selection; a missing
# model's error. Screenshots go to BUILD_DIR/vscode-real/. Heavy (a minute or more), so it runs
# only with AUGURY_VSCODE_REAL=1 and skips (77) without it, without the tools
# (scripts/vscode-deps --real) or without AUGURY_TEST_MODEL_SMALL.
#   usage: AUGURY_VSCODE_REAL=1 tests/vscode/real/run.sh BUILD_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
build=$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)
real=${AUGURY_VSCODE_REAL_DIR:-$HOME/.cache/augury/vscode-real}
node24=$real/node24/node_modules/.bin/node
code_server=$real/node_modules/code-server/out/node/entry.js
skip() { echo "skip: $*"; exit 77; }

[[ ${AUGURY_VSCODE_REAL:-} == 1 ]] || skip "the real-VS-Code suite runs with AUGURY_VSCODE_REAL=1"
[[ -x $node24 && -f $code_server && -d $real/node_modules/playwright-core ]] ||
  skip "code-server, Node 24 or playwright-core missing in $real: run scripts/vscode-deps --real"
chromium=$(command -v chromium || true)
[[ -n $chromium ]] || skip "no chromium: run scripts/vscode-deps --real"
model=${AUGURY_TEST_MODEL_SMALL:-}
[[ -n $model && -f $model ]] || skip "AUGURY_TEST_MODEL_SMALL is not set (scripts/get-model small)"
[[ -x $build/augury ]] || { echo "FAIL: no $build/augury"; exit 1; }

out=$build/vscode-real
rm -rf "$out"
mkdir -p "$out/user/User" "$out/extensions" "$out/workspace"
(cd "$root/editors/vscode" && npm run --silent package >"$out/package.log" 2>&1) ||
  { cat "$out/package.log"; exit 1; }
vsix=$root/editors/vscode/out/augury.vsix

cat >"$out/user/User/settings.json" <<JSON
{
  "augury.serverPath": "$build/augury",
  "augury.model": "$model",
  "augury.threads": 2,
  "augury.debounceMs": 0,
  "editor.inlineSuggest.enabled": true,
  "editor.quickSuggestions": { "other": false, "comments": false, "strings": false },
  "editor.suggestOnTriggerCharacters": false,
  "editor.wordBasedSuggestions": "off",
  "editor.acceptSuggestionOnEnter": "off",
  "files.autoSave": "off",
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "workbench.welcomePage.walkthroughs.openOnInstall": false,
  "security.workspace.trust.enabled": false,
  "telemetry.telemetryLevel": "off",
  "update.mode": "none",
  "extensions.autoCheckUpdates": false,
  "extensions.autoUpdate": false,
  "workbench.secondarySideBar.defaultVisibility": "hidden",
  "chat.disableAIFeatures": true,
  "git.enabled": false,
  "git.openRepositoryInParentFolders": "never",
  "python.languageServer": "None"
}
JSON
printf 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n' \
  >"$out/workspace/fib.py"

cs=("$node24" "$code_server" --user-data-dir "$out/user" --extensions-dir "$out/extensions")
"${cs[@]}" --install-extension "$vsix" >"$out/install.log" 2>&1 || { cat "$out/install.log"; exit 1; }
grep -q "augury" "$out/install.log" || { cat "$out/install.log"; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${cs[@]}" --auth none --bind-addr "127.0.0.1:$port" --disable-telemetry --disable-update-check \
  --disable-workspace-trust --disable-getting-started-override "$out/workspace" >"$out/code-server.log" 2>&1 &
cs_pid=$!
trap 'kill $cs_pid 2>/dev/null || true; wait $cs_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 $cs_pid 2>/dev/null || { cat "$out/code-server.log"; exit 1; }
  sleep 0.5
done

NODE_PATH=$real/node_modules AUGURY_URL="http://127.0.0.1:$port/?folder=$out/workspace" \
  AUGURY_OUT=$out AUGURY_CHROMIUM=$chromium AUGURY_SETTINGS=$out/user/User/settings.json \
  "$node24" "$root/tests/vscode/real/drive.cjs"
