#!/usr/bin/env bash
# Liveness is the session's, not a channel's (docs/protocol.md, "Liveness").
# 1. One data channel sends nothing for longer than the idle limit while the
#    other works (fault src_starve_chan: the sender's last channel idles in
#    round 0; the link is capped so the other channel is busy all along):
#    the migration completes and verifies on the destination.
# 2. The whole session goes silent for longer than the idle limit (the
#    sender stalls between rounds): both sides give up (exit 6) and the VM
#    runs on the source only.
. "$SMG_SRC/test/engine/lib.sh"

IDLE=2000
RECV_EXTRA=(--io-timeout "$IDLE")

# 12 MiB, no zero pages: each of the two channels carries 6 MiB in round 0,
# 6 s at the 1 MiB/s cap while the other channel idles for 5 s (> IDLE).
NAME=starve
vm $NAME 12M idle 0 "zero_pct = 0"
start_recv
env SMG_FI=src_starve_chan SMG_FI_STALL_MS=$((IDLE * 5 / 2)) "$SECMIG" send \
	--to "127.0.0.1:$PORT" --peer dst --domain $NAME --json --state-dir "$A" --name src \
	--check-memory --channels 2 --bandwidth 1M --io-timeout "$IDLE" \
	>"$T/send.out" 2>"$T/send.err"
RC=$?
grep -q "src_starve_chan: channel 1 idle" "$T/send.err" || err "starve: the fault did not fire"
[ "$RC" = 0 ] || err "starve: send exit $RC, want 0"
wait "$RECV_PID"; RRC=$?
[ "$RRC" = 0 ] || err "starve: recv exit $RRC, want 0"
[ "$(field outcome)" = migrated ] || err "starve: outcome $(field outcome)"
expect_on B $NAME "a starved data channel"
"$SECMIG" sim --state-dir "$B" destroy $NAME >/dev/null

# Silence of the whole session: still a failure after the idle limit.
NAME=silent
vm $NAME 12M idle 0
start_recv
env SMG_FI=src_after_round0 SMG_FI_STALL_MS=$((IDLE * 3)) "$SECMIG" --quiet send \
	--to "127.0.0.1:$PORT" --peer dst --domain $NAME --json --state-dir "$A" --name src \
	--channels 2 --io-timeout "$IDLE" >"$T/send.out" 2>"$T/send.err"
RC=$?
[ "$RC" = 6 ] || err "silent: send exit $RC, want 6"
wait "$RECV_PID"; RRC=$?
[ "$RRC" = 6 ] || err "silent: recv exit $RRC, want 6"
grep -q "timed out" "$T/recv.err" || err "silent: the receiver did not time out"
for i in $(seq 50); do [ "$(state_on "$B" $NAME)" = absent ] && break; sleep 0.05; done
expect_on A $NAME "a silent session"

[ $fail = 0 ] && echo "liveness: all checks passed"
exit $fail
