#!/usr/bin/env bash
# Build llama.cpp's llama-server from the llama-cpp-python sdist (it vendors llama.cpp) and cache
# the binary under the user cache, keyed by the llama-cpp-python version, so later runs skip the
# build. Prints the binary's path on stdout; everything else goes to stderr.
#
#   bash scripts/llama_server.sh            # the version installed in .venv (or $PYTHON)
#   LLAMA_CPP_PYTHON_VERSION=0.3.36 bash scripts/llama_server.sh
#
# Environment: PYTHON (default .venv/bin/python), JOBS (default 2), GHOSTFILL_CACHE (default
# ${XDG_CACHE_HOME:-~/.cache}/ghostfill). A first build takes ~10 minutes on 2 cores; it needs
# cmake, a C++ compiler and PyPI (for the sdist), nothing else (no curl, no OpenSSL, no web UI).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
version="${LLAMA_CPP_PYTHON_VERSION:-$("$py" -c 'import llama_cpp; print(llama_cpp.__version__)')}"
cache="${GHOSTFILL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ghostfill}/llama-server/$version"
bin="$cache/llama-server"

usable() { [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; }

if usable; then
  echo "$bin"
  exit 0
fi

mkdir -p "$cache"
# One build at a time (a test session and a benchmark may ask together); the loser reuses it.
exec 9>"$cache/.lock"
flock 9
if usable; then
  echo "$bin"
  exit 0
fi

command -v cmake >/dev/null || { echo "llama_server.sh: cmake not found (apt-get install cmake)" >&2; exit 1; }
work="$(mktemp -d "${TMPDIR:-/tmp}/ghostfill-llama-server.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "llama_server.sh: building llama-server from llama-cpp-python $version in $work" \
     "(~10 min on 2 cores)" >&2
"$py" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$work" >&2
tar -xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
src="$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)"
[ -f "$src/tools/server/server.cpp" ] || { echo "llama_server.sh: no tools/server in $src" >&2; exit 1; }

flags=""
# GGML_NATIVE on a CPU with AMX builds AMX kernels that some toolchains miscompile; keep them out.
if grep -q amx_tile /proc/cpuinfo 2>/dev/null; then
  flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
fi
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" >&2
cmake --build "$work/build" --target llama-server -j"${JOBS:-2}" >&2
built="$work/build/bin/llama-server"
"$built" --version >&2
cp "$built" "$cache/llama-server.tmp"
mv "$cache/llama-server.tmp" "$bin"
echo "$bin"
