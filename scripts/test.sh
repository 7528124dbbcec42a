#!/usr/bin/env bash
# The README's second command: set up, then build and run every check CI runs:
# sanitizer build + ctest, the clang-format check, the fuzz build and a short
# run of each fuzzer on its committed corpus.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/setup.sh

echo "== sanitizer build (ASan + UBSan, -Werror)"
bash scripts/build.sh asan
echo "== ctest"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j 2 --timeout 900)

echo "== clang-format"
bash scripts/format.sh --check

echo "== fuzz build"
bash scripts/build.sh fuzz
echo "== fuzzers"
bash scripts/fuzz.sh "${SMG_FUZZ_SECONDS:-20}"
echo "== all checks passed"
