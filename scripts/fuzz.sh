#!/usr/bin/env bash
# scripts/fuzz.sh SECONDS: run every fuzzer in build-fuzz for SECONDS on a
# scratch copy of its committed corpus (fuzz/corpus/<name>/).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-20}
shopt -s nullglob
n=0
for bin in "$top"/build-fuzz/fuzz_*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin"); name=${name#fuzz_}
	seed="$top/fuzz/corpus/$name"
	work=$(mktemp -d)
	[ -d "$seed" ] && cp -r "$seed"/. "$work"/
	echo "fuzz_$name: ${secs}s on $(ls "$work" | wc -l) seeds"
	"$bin" -max_total_time="$secs" -print_final_stats=1 "$work" 2>"$work.log" ||
		{ tail -40 "$work.log"; rm -rf "$work" "$work.log"; exit 1; }
	grep -E 'stat::number_of_executed_units' "$work.log" || true
	rm -rf "$work" "$work.log"
	n=$((n + 1))
done
echo "fuzzers run: $n"
