#!/usr/bin/env bash
# scripts/build.sh KIND -> build-KIND/ ; KIND is release, asan, fuzz or tsan.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
kind=${1:-release}
jobs=$(nproc)
case $kind in
release) flags=(-DCMAKE_BUILD_TYPE=Release) ;;
asan) flags=(-DCMAKE_BUILD_TYPE=Debug -DSMG_SANITIZE=ON) ;;
fuzz) flags=(-DCMAKE_BUILD_TYPE=Debug -DSMG_FUZZ=ON -DCMAKE_C_COMPILER=clang) ;;
# ThreadSanitizer: only the threaded tests (ctest -L tsan) and the core
# they link (cmake/tests.cmake, SMG_TSAN_TESTS), not the whole tree.
tsan) flags=(-DCMAKE_BUILD_TYPE=Debug -DSMG_TSAN=ON) ;;
*) echo "build.sh: unknown kind '$kind' (release, asan, fuzz, tsan)" >&2; exit 2 ;;
esac
cmake -S "$top" -B "$top/build-$kind" -G Ninja "${flags[@]}" >/dev/null
if [ "$kind" = tsan ]; then
	cmake --build "$top/build-$kind" -j "$jobs" --target tsan_tests
else
	cmake --build "$top/build-$kind" -j "$jobs"
fi
