#!/usr/bin/env bash
# Stage a revision of ghostfill as an importable package, for soaking it next to another:
#   bash scripts/stage_revision.sh REV DIR
#   python -m ghostfill.bench.soak --server before=DIR ...
# DIR/ghostfill is the package laid out as installed (lsp/ -> ghostfill.lsp, ...; see
# pyproject.toml); the soak puts DIR first on the server's PYTHONPATH, ahead of the
# editable install. Dependencies come from the current environment.
set -euo pipefail
rev=$1
dir=$2
cd "$(dirname "$0")/.."
rm -rf "$dir"
mkdir -p "$dir/src"
git archive "$rev" | tar -x -C "$dir/src"
cp -r "$dir/src/ghostfill" "$dir/ghostfill"
for sub in lsp completion backends fim bench; do
  cp -r "$dir/src/$sub" "$dir/ghostfill/$sub"
done
echo "$dir: $(git rev-parse --short "$rev")"
