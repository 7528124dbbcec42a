#!/usr/bin/env bash
# scripts/format.sh [--check]: format (or check) every C file we own.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mapfile -t files < <(git ls-files -co --exclude-standard '*.c' '*.h')
[ ${#files[@]} -eq 0 ] && exit 0
if [ "${1:-}" = --check ]; then
	clang-format --dry-run --Werror "${files[@]}"
	echo "clang-format: ${#files[@]} files clean"
else
	clang-format -i "${files[@]}"
fi
