#!/usr/bin/env bash
# Type-check the `ghostfill` import package with mypy. The package's folders sit at the
# repository root and pyproject maps them into one package (lsp/ -> ghostfill.lsp, ...), a
# layout mypy cannot follow from the source tree; so the package is assembled as links in a
# scratch directory, exactly as pyproject maps it, and checked there.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
py=${PYTHON:-$root/.venv/bin/python}
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/ghostfill/completion"
for f in ghostfill/*.py ghostfill/py.typed; do ln -s "$root/$f" "$tree/ghostfill/"; done
ln -s "$root/lsp" "$tree/ghostfill/lsp"
ln -s "$root/backends" "$tree/ghostfill/backends"
ln -s "$root/fim" "$tree/ghostfill/fim"
ln -s "$root/bench" "$tree/ghostfill/bench"
for f in completion/*.py; do ln -s "$root/$f" "$tree/ghostfill/completion/"; done
ln -s "$root/completion/filters" "$tree/ghostfill/completion/filters"
cd "$tree"
"$py" -m mypy --config-file "$root/pyproject.toml" -p ghostfill "$@"
