#!/usr/bin/env bash
# fetch_test.sh CASE SOURCE_DIR CACHE GENERATOR: checks of scripts/fetch-grammars and of
# grammars/grammars.cmake's refusal (see tests.cmake). Works in a temporary folder it removes.
set -euo pipefail
case_name=$1 src=$2 cache=$3 generator=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Any download attempt goes to a closed local port and fails at once.
export AUGURY_FETCH_TOOL=curl npm_config_registry=http://127.0.0.1:9

expect_configure_failure() { # CACHE_DIR TEXT...
  local dir=$1; shift
  if cmake -S "$src" -B "$tmp/build" -G "$generator" -DAUGURY_GRAMMARS_CACHE="$dir" >"$tmp/log" 2>&1; then
    echo "configure succeeded with cache $dir"; exit 1
  fi
  for text in "$@"; do
    if ! tr -s ' \n' ' ' <"$tmp/log" | grep -qF -- "$text"; then
      echo "configure output lacks '$text':"; cat "$tmp/log"; exit 1
    fi
  done
}

case $case_name in
  warm_cache_offline)
    out=$(AUGURY_GRAMMARS_CACHE="$cache" "$src/scripts/fetch-grammars")
    echo "$out"
    grep -q "all grammar packages present" <<<"$out"
    ;;
  missing_cache)
    expect_configure_failure "$tmp/empty" "grammars: tree-sitter@" "run scripts/fetch-grammars"
    # and the script, offline, says which package it could not get
    if AUGURY_GRAMMARS_CACHE="$tmp/empty" "$src/scripts/fetch-grammars" >"$tmp/fetch" 2>&1; then
      echo "fetch-grammars succeeded offline into an empty cache"; exit 1
    fi
    grep -q "cannot download tree-sitter@" "$tmp/fetch" || { cat "$tmp/fetch"; exit 1; }
    ;;
  wrong_sum)
    # The real packages, except that one was unpacked from a tarball with another sum.
    mkdir -p "$tmp/cache"
    for d in "$cache"/*/; do ln -s "${d%/}" "$tmp/cache/$(basename "$d")"; done
    go=$(basename "$(ls -d "$cache"/tree-sitter-go-*)")
    rm "$tmp/cache/$go"; mkdir "$tmp/cache/$go"
    echo 0000000000000000000000000000000000000000000000000000000000000000 >"$tmp/cache/$go/.sha256"
    expect_configure_failure "$tmp/cache" "grammars: tree-sitter-go@" "sha256" "run scripts/fetch-grammars"
    ;;
  *) echo "unknown case $case_name"; exit 2 ;;
esac
echo "ok: $case_name"
