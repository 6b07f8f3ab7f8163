#!/usr/bin/env bash
# Build llama-cpp-python from source once and keep the wheel in the cache, so later environments
# install it in seconds. Usage: build-llama.sh PIP WHEEL_DIR VERSION CMAKE_ARGS
set -euo pipefail
pip="$1"; wheels="$2"; version="$3"; cmake_args="$4"
mkdir -p "$wheels"
if ls "$wheels"/llama_cpp_python-"$version"-*.whl >/dev/null 2>&1; then
  echo "llama-cpp-python $version: using cached wheel in $wheels"
  exit 0
fi
echo "llama-cpp-python $version: building from source (a few minutes on 2 cores) ..."
CMAKE_ARGS="$cmake_args" "$pip" wheel --no-deps "llama-cpp-python==$version" -w "$wheels"
