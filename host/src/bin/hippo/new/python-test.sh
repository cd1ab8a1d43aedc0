#!/usr/bin/env sh
# Builds the plugin, then runs its task in hippo's sandbox with its manifest
# (`hippo run`: the limits and grants a deployed plugin gets): a greeting,
# and a blank name refused as bad input.
set -eu
cd "$(dirname "$0")"
./build.sh
hippo="${HIPPO:-hippo}"
out="$("$hippo" run %NAME%.wasm %NAME%.hello --input '{"name": "Ada"}')"
echo "$out"
echo "$out" | grep -q 'Hello, Ada!' || { echo "FAIL: no greeting" >&2; exit 1; }
if "$hippo" run %NAME%.wasm %NAME%.hello --input '{"name": " "}' >/dev/null 2>&1; then
    echo "FAIL: a blank name was accepted" >&2
    exit 1
fi
echo "ok"
