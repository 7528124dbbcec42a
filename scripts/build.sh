#!/usr/bin/env bash
# scripts/build.sh KIND -> build-KIND/ ; KIND is release, asan or fuzz.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
kind=${1:-release}
jobs=$(nproc)
case $kind in
release) flags=(-DCMAKE_BUILD_TYPE=Release) ;;
asan) flags=(-DCMAKE_BUILD_TYPE=Debug -DSMG_SANITIZE=ON) ;;
fuzz) flags=(-DCMAKE_BUILD_TYPE=Debug -DSMG_FUZZ=ON -DCMAKE_C_COMPILER=clang) ;;
*) echo "build.sh: unknown kind '$kind' (release, asan, fuzz)" >&2; exit 2 ;;
esac
cmake -S "$top" -B "$top/build-$kind" -G Ninja "${flags[@]}" >/dev/null
cmake --build "$top/build-$kind" -j "$jobs"
