#!/usr/bin/env sh
# Builds %NAME%.wasm with componentize-py (pip install componentize-py==0.25.1;
# or name it in $COMPONENTIZE_PY) against hippo's WIT world `task-basic`
# (log, progress, deadline). A plugin that needs kv or the memory store
# builds against `task-host` or `task-plugin`, and its manifest grants them.
set -eu
cd "$(dirname "$0")"
"${COMPONENTIZE_PY:-componentize-py}" -d wit -w task-basic componentize -p . app -o %NAME%.wasm
echo "built $(pwd)/%NAME%.wasm"
