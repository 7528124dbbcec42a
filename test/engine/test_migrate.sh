#!/usr/bin/env bash
# End-to-end migrations over loopback between two sim hosts: an idle VM, a
# converging hot-spot VM, a VM dirtying faster than the (capped) link with
# and without auto-converge. After each success the destination verifies
# and its memory root equals the source's root at pause.
. "$SMG_SRC/test/engine/lib.sh"

check_success() { # NAME WHAT
	[ "$RC" = 0 ] || { err "$2: send exit $RC"; cat "$T/send.err"; }
	wait "$RECV_PID"; local rrc=$?
	[ "$rrc" = 0 ] || { err "$2: recv exit $rrc"; cat "$T/recv.err"; }
	[ "$(field event)" = result ] || err "$2: last line is not the result"
	[ "$(field outcome)" = migrated ] || err "$2: outcome $(field outcome)"
	[ "$(field verified)" = true ] || err "$2: not verified"
	local sroot rroot
	sroot=$(field memory_root)
	rroot=$(tail -n 1 "$T/recv.out" | sed -n 's/.*"memory_root":"\([0-9a-f]*\)".*/\1/p')
	[ -n "$sroot" ] && [ "$sroot" = "$rroot" ] ||
		err "$2: memory root at pause $sroot != destination's $rroot"
	expect_on B "$1" "$2"
	for k in downtime_ms total_ms bytes_sent ram_bytes rounds; do
		[ -n "$(field $k)" ] || err "$2: result lacks $k"
	done
}

vm idle 16M idle 0
start_recv
send idle --channels 2
check_success idle "idle VM"
[ "$(field rounds)" -le 2 ] || err "idle VM took $(field rounds) rounds"
zero=$(field zero_pages)
[ "$zero" -ge 800 ] || err "idle VM: zero pages not sent as records ($zero)"
bytes=$(field bytes_sent)
[ "$bytes" -lt $((16 * 1024 * 1024)) ] || err "idle VM: $bytes bytes for 16 MiB with 20% zero pages"

# A long run of zero pages after an open page frame on one channel (more
# zero records than one frame holds): regression for a zero-list overrun.
vm sparse 640M idle 0 "zero_pct = 95"
start_recv
send sparse --channels 1
check_success sparse "long zero run"
[ "$(field zero_pages)" -gt 131072 ] || err "sparse: only $(field zero_pages) zero records"
"$SECMIG" sim --state-dir "$B" destroy sparse >/dev/null

vm hot 32M hotspot 10M
sleep 0.3
start_recv
send hot --channels 3 --max-downtime 50
check_success hot "converging hot-spot VM"
grep -q '"event":"round"' "$T/send.out" || err "no round events"

# Faster than the link: 60 MB/s of writes over a 20 MB/s cap.
vm fast 16M uniform 60M
sleep 0.2
start_recv
send fast --bandwidth 20M --max-downtime 20
check_success fast "auto-converge"
[ "$(field throttle)" -gt 0 ] || err "auto-converge did not throttle"

vm slow 16M uniform 60M
sleep 0.2
start_recv
send slow --bandwidth 20M --max-downtime 20 --no-auto-converge --on-no-converge abort
[ "$RC" = 8 ] || { err "--no-auto-converge: exit $RC, want 8"; cat "$T/send.err"; }
[ "$(field outcome)" = not_converged ] || err "outcome $(field outcome)"
wait "$RECV_PID"
expect_on A slow "no-auto-converge abort"

# The receiver as a service: several migrations in a row, and a cap on
# concurrent ones (the second sender is refused while the first runs).
"$SECMIG" --quiet recv --listen 127.0.0.1:0 --json --max-concurrent 1 --state-dir "$B" \
	--name dst --insecure-software-mode --defs "$B/defs" >"$T/svc.out" 2>"$T/svc.err" &
SVC=$!
PIDS+=($SVC)
for i in $(seq 100); do
	PORT=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$T/svc.out"); [ -n "$PORT" ] && break; sleep 0.05
done
for i in 1 2 3; do
	vm row$i 8M hotspot 5M
	send row$i
	[ "$RC" = 0 ] || err "service migration $i: exit $RC"
	expect_on B row$i "service migration $i"
done
vm capped 16M idle 0
vm extra 8M idle 0
"$SECMIG" --quiet send --to "127.0.0.1:$PORT" --peer dst --domain capped --json --state-dir "$A" \
	--name src --bandwidth 4M --on-no-converge extend >"$T/capped.out" 2>&1 &
CAPPED=$!
sleep 1
send extra
[ "$RC" = 14 ] || err "second concurrent migration: exit $RC, want 14 (capacity: receiver busy)"
[ "$(field reason)" = capacity ] || err "busy receiver: reason $(field reason)"
expect_on A extra "refused by the concurrency cap"
"$SECMIG" audit show --state-dir "$B" | grep -q 'alert .*peer=src .*kind=busy' ||
	err "the refusal by the concurrency cap is not in B's audit log"
wait $CAPPED || err "first migration failed while the second was refused"
expect_on B capped "migration under the concurrency cap"
kill -0 $SVC || err "the service died"

[ $fail = 0 ] && echo "engine migrate: all checks passed"
exit $fail
