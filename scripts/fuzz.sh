#!/usr/bin/env bash
# scripts/fuzz.sh SECONDS [JOBS]: run every fuzzer in build-fuzz for SECONDS
# on a scratch copy of its committed corpus (fuzz/corpus/<name>/), JOBS of
# them at a time (default: SMG_FUZZ_JOBS, else 2: CI's two cores).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-20}
jobs=${2:-${SMG_FUZZ_JOBS:-2}}
shopt -s nullglob
scratch=$(mktemp -d /tmp/smg-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

# One fuzzer: its summary lines go to $scratch/NAME.out, printed in order
# when it ends; a crash leaves the log's tail there and exits 1.
one() {
	local bin=$1 name work out
	name=$(basename "$bin"); name=${name#fuzz_}
	work=$scratch/$name
	out=$scratch/$name.out
	mkdir -p "$work"
	[ -d "$top/fuzz/corpus/$name" ] && cp -r "$top/fuzz/corpus/$name"/. "$work"/
	echo "fuzz_$name: ${secs}s on $(ls "$work" | wc -l) seeds" >"$out"
	if ! "$bin" -max_total_time="$secs" -print_final_stats=1 "$work" \
		2>"$work.log"; then
		tail -40 "$work.log" >>"$out"
		return 1
	fi
	# "#N INITED": every seed was replayed (before the time limit counts)
	grep -m1 -E '^#[0-9]+[[:space:]]+INITED' "$work.log" >>"$out" || echo "(seed replay unfinished)" >>"$out"
	grep -E 'stat::number_of_executed_units' "$work.log" >>"$out" || true
}

bins=()
for bin in "$top"/build-fuzz/fuzz_*; do [ -x "$bin" ] && bins+=("$bin"); done
for bin in "${bins[@]}"; do
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
	name=$(basename "$bin"); name=${name#fuzz_}
	{ one "$bin" || touch "$scratch/$name.failed"; } &
done
wait
fail=0
for bin in "${bins[@]}"; do
	name=$(basename "$bin"); name=${name#fuzz_}
	cat "$scratch/$name.out"
	[ -e "$scratch/$name.failed" ] && fail=1
done
echo "fuzzers run: ${#bins[@]} ($jobs at a time)"
[ $fail = 0 ] || { echo "a fuzzer failed (its log's tail is above)"; exit 1; }
