#!/bin/bash
# Build llama.cpp's llama-server for this CPU (AVX512 / AVX512-VNNI / AMX kernels) from the package index's
# llama-cpp-python sdist, which vendors llama.cpp's sources. Optional: the shipped engine is xllamacpp's
# prebuilt AVX2 server. Use the result with `export SAGPT_LLAMA_SERVER=$DIR/llama-build/bin/llama-server`.
#
#   scripts/build_llama_server.sh [DIR]        (default DIR: ~/.cache/studyabroadgpt/llama-native)
#   make llama-server-native
#
# Needs a C++ compiler, cmake, ninja and pip; ~20-40 min on 2 busy cores (206 ninja steps).
set -euo pipefail
VERSION=0.3.36
DIR=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/studyabroadgpt/llama-native}
PY=${PYTHON:-python3}
mkdir -p "$DIR"
cd "$DIR"
if [ ! -d "llama_cpp_python-$VERSION" ]; then
  "$PY" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d .
  tar xzf "llama_cpp_python-$VERSION.tar.gz"
fi
MMQ="llama_cpp_python-$VERSION/vendor/llama.cpp/ggml/src/ggml-cpu/amx/mmq.cpp"
# GCC 12 drops the tile config's rows/colsb stores as dead before _tile_loadconfig (the builtin is not modelled
# as reading its 64-byte operand): the disassembly stores only palette_id, ldtilecfg then reads stale rows
# (18 > 16 on the AMX Xeon) and raises #GP, a segfault on the first AMX matmul. A compiler barrier keeps the
# stores (upstream: ggml-org/llama.cpp#26954 moves the config to .rodata for the same reason).
if ! grep -q 'asm volatile("" : : "r"(&tc) : "memory");' "$MMQ"; then
  "$PY" - "$MMQ" <<'PYEOF'
import sys
path = sys.argv[1]
src = open(path).read()
old = "    _tile_loadconfig(&tc);\n"
if src.count(old) != 1:
    sys.exit(f"{path}: expected one '_tile_loadconfig(&tc);' to patch, found {src.count(old)}")
open(path, "w").write(src.replace(old, '    asm volatile("" : : "r"(&tc) : "memory");\n' + old))
PYEOF
fi
cmake -S "llama_cpp_python-$VERSION/vendor/llama.cpp" -B llama-build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_APP=OFF > cmake.log
ninja -C llama-build llama-server
echo "built: export SAGPT_LLAMA_SERVER=$DIR/llama-build/bin/llama-server"
