#!/usr/bin/env bash
# Signals and cancel (DESIGN §7): the fault matrix, one row per signal and
# per phase. The sender stalls at a named point of the phase (SMG_FI, the
# stall ends as soon as the cancel was handled), the test sends the signal:
#  - before COMMIT (setup, precopy, stopcopy with the VM paused, verify):
#    ABORT reaches the receiver, the VM runs on the source and verifies,
#    both sides report exit 13 "cancelled" with a result line;
#  - from COMMIT to DONE: the signal is deferred, the hand-over completes.
# Then a sender blocked in a wait (the receiver stalls before READY), a
# reader that goes away (| head), and `secmig cancel` by id.
. "$SMG_SRC/test/engine/lib.sh"

# The test runs senders in the background of a script, where SIGINT and
# SIGHUP arrive ignored (and stay ignored, as for any tool): give them back.
sig_send() { # NAME FAULT [flags]: a stalled sender in the background, SPID
	local name=$1 fi=$2; shift 2
	env --default-signal=INT,HUP,TERM,PIPE SMG_FI="$fi" SMG_FI_STALL_MS=120000 \
		"$SECMIG" send --to "127.0.0.1:$PORT" --peer dst --domain "$name" --json \
		--state-dir "$A" --name src --on-no-converge extend "$@" >"$T/send.out" \
		2>"$T/send.err" &
	SPID=$!
	PIDS+=($SPID)
}
wait_for() { # FILE PATTERN
	for i in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
	return 1
}
last() { tail -n 1 "$1"; }

cancelled_row() { # SIG PHASE FAULT
	local sig=$1 phase=$2 fi=$3 name="s_$1_$2"
	vm "$name" 8M hotspot 2M
	start_recv
	sig_send "$name" "$fi"
	wait_for "$T/send.err" "$fi: stalling" || err "$sig/$phase: never reached $fi"
	kill -"$sig" "$SPID"
	wait "$SPID"
	local rc=$? rrc
	wait "$RECV_PID"
	rrc=$?
	[ "$rc" = 13 ] || err "$sig/$phase: send exit $rc, want 13"
	[ "$rrc" = 13 ] || err "$sig/$phase: recv exit $rrc, want 13"
	last "$T/send.out" | grep -q '"outcome":"cancelled"' ||
		err "$sig/$phase: send result: $(last "$T/send.out")"
	last "$T/send.out" | grep -q "\"detail\":\"cancelled on the source (SIG$sig)\"" ||
		err "$sig/$phase: no detail naming SIG$sig"
	last "$T/send.out" | grep -q '"failed_host":"source"' || err "$sig/$phase: failed_host"
	last "$T/recv.out" | grep -q '"outcome":"cancelled"' ||
		err "$sig/$phase: recv result: $(last "$T/recv.out")"
	for i in $(seq 50); do [ "$(state_on "$B" "$name")" = absent ] && break; sleep 0.05; done
	expect_on A "$name" "$sig/$phase"
	echo "row $sig $phase: send exit $rc, recv exit $rrc, VM on A: $(state_on "$A" "$name")"
	"$SECMIG" sim --state-dir "$A" destroy "$name" >/dev/null
}

deferred_row() { # SIG
	local sig=$1 name="s_$1_commit"
	vm "$name" 8M hotspot 2M
	start_recv
	sig_send "$name" src_after_commit
	wait_for "$T/send.err" "src_after_commit: stalling" || err "$sig/commit: no COMMIT"
	kill -"$sig" "$SPID"
	wait "$SPID"
	local rc=$?
	wait "$RECV_PID"
	[ "$rc" = 0 ] || err "$sig/commit: send exit $rc, want 0 (the signal is deferred)"
	grep -q "SIG$sig: the hand-over is past COMMIT and cannot be cancelled" "$T/send.err" ||
		err "$sig/commit: the deferral was not reported"
	expect_on B "$name" "$sig/commit"
	echo "row $sig commit: send exit $rc (deferred), VM on B: $(state_on "$B" "$name")"
	"$SECMIG" sim --state-dir "$B" destroy "$name" >/dev/null
}

for sig in INT TERM HUP PIPE; do
	cancelled_row $sig setup src_in_setup
	cancelled_row $sig precopy src_after_round0
	cancelled_row $sig stopcopy src_after_pause
	cancelled_row $sig verify src_in_verify
	deferred_row $sig
done

# The re-check before COMMIT (engine/source.c recheck_commit) can fail: the
# destination is cancelled after it sent READY, while the sender sits
# between READY and its COMMIT (fault src_before_commit: it waits until the
# destination speaks). The sender must read the ABORT and resume its VM
# (exit 13, the destination's reason), not commit into a dropped copy (in
# doubt).
vm s_recheck 8M hotspot 2M
start_recv
sig_send s_recheck src_before_commit
wait_for "$T/send.err" "src_before_commit: stalling" || err "recheck: never reached READY"
ID=$(sed -n 's/.*"migration_id":"\([0-9a-f]\{32\}\)".*/\1/p' "$T/recv.out" | head -n 1)
"$SECMIG" cancel "$ID" --state-dir "$B" >"$T/cancel.out" 2>&1 ||
	err "recheck: cancel $ID on the destination: $(cat "$T/cancel.out")"
wait "$SPID"
RC=$?
wait "$RECV_PID"
RRC=$?
[ "$RC" = 13 ] || err "recheck: send exit $RC, want 13 (the destination's cancel)"
[ "$RRC" = 13 ] || err "recheck: recv exit $RRC, want 13"
last "$T/send.out" | grep -q '"outcome":"cancelled"' || err "recheck: send result: $(last "$T/send.out")"
last "$T/send.out" | grep -q '"failed_host":"destination"' || err "recheck: failed_host"
grep -q "COMMIT recorded" "$T/send.err" && err "recheck: the sender committed"
for i in $(seq 50); do [ "$(state_on "$B" s_recheck)" = absent ] && break; sleep 0.05; done
expect_on A s_recheck "recheck before COMMIT"
echo "row recheck: send exit $RC, recv exit $RRC, VM on A: $(state_on "$A" s_recheck)"
"$SECMIG" sim --state-dir "$A" destroy s_recheck >/dev/null

# A sender blocked in a wait: the receiver stalls before READY; Ctrl-C ends
# the wait at once (no I/O timeout), ABORT still goes out.
vm s_wait 8M hotspot 2M
start_recv SMG_FI=dst_before_ready SMG_FI_STALL_MS=120000
sig_send s_wait none
wait_for "$T/send.out" '"phase":"verify"' || err "wait: never reached verify"
kill -INT "$SPID"
wait "$SPID"
RC=$?
[ "$RC" = 13 ] || err "SIGINT while waiting for READY: exit $RC, want 13"
kill "$RECV_PID" 2>/dev/null
wait "$RECV_PID" 2>/dev/null
for i in $(seq 50); do [ "$(state_on "$B" s_wait)" = absent ] && break; sleep 0.05; done
expect_on A s_wait "SIGINT while waiting for READY"

# The reader goes away: secmig send --json ... | head -n 3
vm s_pipe 16M hotspot 2M
start_recv
env --default-signal=PIPE "$SECMIG" send --to "127.0.0.1:$PORT" --peer dst --domain s_pipe \
	--json --state-dir "$A" --name src --bandwidth 2M --on-no-converge extend \
	2>"$T/send.err" | head -n 3 >"$T/head.out"
RC=${PIPESTATUS[0]}
wait "$RECV_PID"
RRC=$?
[ "$RC" = 13 ] || err "| head -n 3: send exit $RC, want 13"
[ "$RRC" = 13 ] || err "| head -n 3: recv exit $RRC, want 13"
grep -q "output closed: cancelling" "$T/send.err" || err "| head: $(tail -2 "$T/send.err")"
expect_on A s_pipe "| head -n 3"

# secmig cancel ID, from another terminal, while pre-copy runs
vm s_cancel 16M hotspot 2M
start_recv
sig_send s_cancel none --bandwidth 2M
wait_for "$T/send.out" '"event":"progress"' || err "cancel: no progress event"
ID=$(sed -n 's/.*"migration_id":"\([0-9a-f]\{32\}\)".*/\1/p' "$T/send.out" | head -n 1)
"$SECMIG" cancel "$ID" --state-dir "$A" >"$T/cancel.out" 2>&1 || err "cancel $ID: $(cat "$T/cancel.out")"
wait "$SPID"
RC=$?
wait "$RECV_PID"
[ "$RC" = 13 ] || err "secmig cancel: send exit $RC, want 13"
last "$T/send.out" | grep -q '"detail":"cancelled on the source (secmig cancel' ||
	err "cancel: $(last "$T/send.out")"
expect_on A s_cancel "secmig cancel"
"$SECMIG" cancel "$ID" --state-dir "$A" >/dev/null 2>&1
[ $? = 12 ] || err "cancel of a finished migration: not 'not found'"

[ $fail = 0 ] && echo "engine signals: all checks passed"
exit $fail
