#!/usr/bin/env bash
# The heavier suite of the remote provider: `augury lsp` with "provider": "remote" against a real
# llama-server (scripts/llama-server builds it from the llama.cpp vendored in the pinned
# llama-cpp-python sdist: ~25 minutes the first time) serving the small model, once through
# /infill and once through /v1/completions with an API key (llama-server --api-key, read by the
# provider from the variable named in authEnv). Each run replays tests/plugins/remote_real.json
# (an LSP transcript for tests/lsp/driver.py): a suggestion is served by the remote, the status
# counts it, and the key appears in no message, log or file. Not part of the default run.
#
#   tests/plugins/remote_real.sh [BUILD_DIR]     (default build-plugins; needs scripts/get-model small)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$root/build-plugins}"
server="$("$root/scripts/llama-server")"
model="${AUGURY_TEST_MODEL_SMALL:-$("$root/scripts/get-model" small --print-path)}"
port=$((20000 + RANDOM % 20000))
key="real-suite-key-$RANDOM$RANDOM"
"$server" -m "$model" --host 127.0.0.1 --port "$port" -c 4096 -t 2 --api-key "$key" \
  > /tmp/augury-remote-real-server.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  if curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$port/health" > /dev/null; then
    break
  fi
  kill -0 $pid 2>/dev/null || { cat /tmp/augury-remote-real-server.log; exit 1; }
  sleep 0.5
done
status=0
for api in infill openai; do
  tmp="$(mktemp -d)"
  sed -e "s#\\\$URL#http://127.0.0.1:$port#g" -e "s#\\\$API#$api#g" -e "s#\\\$KEY#$key#g" \
    "$root/tests/plugins/remote_real.json" > "$tmp/remote_real_$api.json"
  if AUGURY_REAL_KEY="$key" python3 "$root/tests/lsp/driver.py" --augury "$build/augury" \
    "$tmp/remote_real_$api.json"; then
    echo "remote_real ($api): PASS"
  else
    echo "remote_real ($api): FAIL"
    status=1
  fi
  rm -rf "$tmp"
done
exit $status
