#!/usr/bin/env bash
# The destination's identity is pinned (DESIGN §7). Three enrolled hosts:
# A (src), B (dst) and C, an honest third host enrolled at A as 'other' and
# at B as 'evil'. Each case was a split brain or a hijack before:
#  1. send aimed at C's address (typo, DNS change, attacker) migrated the VM
#     there with exit 0; now the handshake fails (exit 3), the VM stays;
#  2. with DONE lost (exit 9), a resolve answered by C said "discarded" and
#     the source resumed while B ran the VM: two copies; now C's answer is
#     refused (exit 3), nothing is settled, and B's answer settles it;
#  3. C (enrolled at B) sent RESOLVE for A's migration in flight and B
#     discarded it; now B answers only the migration's own source.
. "$SMG_SRC/test/engine/lib.sh"
C=$T/c
mkdir -p "$C"
"$SECMIG" keygen "$C/host.key" >/dev/null || exit 1
echo "other $(cat "$C/host.key.pub")" >>"$A/peers"
echo "evil $(cat "$C/host.key.pub")" >>"$B/peers"
{ echo "src $(cat "$A/host.key.pub")"; echo "dst $(cat "$B/host.key.pub")"; } >"$C/peers"
chmod 600 "$A/peers" "$B/peers" "$C/peers"
write_defs "$C"
"$SECMIG" --quiet sim host --state-dir "$C" & PIDS+=($!)
for i in $(seq 100); do [ -S "$C/sim.sock" ] && break; sleep 0.05; done

start_recv_c() { # a --once receiver on C, claiming its own name
	rm -f "$T/recvc.out"
	"$SECMIG" --quiet recv --listen 127.0.0.1:0 --once --json --state-dir "$C" \
		--name other --insecure-software-mode --defs "$C/defs" >"$T/recvc.out" 2>"$T/recvc.err" &
	RECVC_PID=$!
	PIDS+=($RECVC_PID)
	PORTC=
	for i in $(seq 200); do
		PORTC=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/recvc.out")
		[ -n "$PORTC" ] && break
		sleep 0.05
	done
	[ -n "$PORTC" ] || err "C's receiver did not start"
}
stop_recv_c() { kill "$RECVC_PID" 2>/dev/null; wait "$RECVC_PID" 2>/dev/null; }

# ---- 1. the wrong host behind the right address --------------------------
vm pin1 8M hotspot 2M
start_recv_c
"$SECMIG" --quiet send --to "127.0.0.1:$PORTC" --peer dst --domain pin1 --json \
	--state-dir "$A" --name src --on-no-converge extend >"$T/send.out" 2>"$T/send.err"
RC=$?
[ "$RC" = 3 ] || err "send to C as dst: exit $RC, want 3"
grep -q "server identifies as 'other', expected 'dst'" "$T/send.err" ||
	err "no word of who answered: $(cat "$T/send.err")"
[ "$(field failed_host)" = destination ] || err "result does not blame the destination"
stop_recv_c
# the same through the peers file: dst's addr= points at C
start_recv_c
sed "s/^dst .*/& addr=127.0.0.1:$PORTC/" "$A/peers" >"$T/peers-addr"
chmod 600 "$T/peers-addr"
"$SECMIG" --quiet send --to dst --domain pin1 --json --state-dir "$A" --name src \
	--peers "$T/peers-addr" >"$T/send.out" 2>"$T/send.err"
RC=$?
[ "$RC" = 3 ] || err "send --to dst (addr= at C): exit $RC, want 3"
stop_recv_c
[ "$(state_on "$C" pin1)" = absent ] || err "C holds a copy of pin1"
expect_on A pin1 "wrong host"
# and --to NAME with the right address migrates
start_recv
sed "s/^dst .*/& addr=127.0.0.1:$PORT/" "$A/peers" >"$T/peers-addr"
"$SECMIG" --quiet send --to dst --domain pin1 --json --state-dir "$A" --name src \
	--peers "$T/peers-addr" --check-memory --on-no-converge extend >"$T/send.out" 2>"$T/send.err"
RC=$?
[ "$RC" = 0 ] || { err "send --to dst: exit $RC"; cat "$T/send.err"; }
wait "$RECV_PID"
expect_on B pin1 "send --to NAME"
"$SECMIG" sim --state-dir "$B" destroy pin1 >/dev/null
vm pin1 8M hotspot 2M

# The destination's default name (its hostname) is not how the source
# enrolled it: the handshake says so on both ends instead of a bare failure.
if [ "$(hostname)" != dst ]; then
	"$SECMIG" recv --listen 127.0.0.1:0 --once --json --state-dir "$B" \
		--insecure-software-mode --defs "$B/defs" >"$T/recv.out" \
		2>"$T/recv.err" &
	RECV_PID=$!
	PIDS+=($RECV_PID)
	for i in $(seq 200); do
		PORT=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/recv.out")
		[ -n "$PORT" ] && break
		sleep 0.05
	done
	grep -q "\"name\":\"$(hostname)\"" "$T/recv.out" || err "recv does not say its name"
	send pin1
	[ "$RC" = 3 ] || err "default name: send exit $RC, want 3"
	grep -q "server identifies as '$(hostname)', expected 'dst'" "$T/send.err" ||
		err "default name: $(cat "$T/send.err")"
	kill "$RECV_PID" 2>/dev/null
	wait "$RECV_PID" 2>/dev/null
	expect_on A pin1 "default name"
fi
"$SECMIG" sim --state-dir "$A" destroy pin1 >/dev/null

# ---- 2. an honest third host answers resolve ------------------------------
vm pin2 8M hotspot 2M
start_recv SMG_FI=dst_no_done
send pin2
[ "$RC" = 9 ] || err "dst_no_done: send exit $RC, want 9"
wait "$RECV_PID"
[ "$(state_on "$A" pin2)" = in_doubt ] || err "pin2 not in doubt on A"
start_recv_c
"$SECMIG" --quiet resolve --domain pin2 --to "127.0.0.1:$PORTC" --json --state-dir "$A" \
	--name src >"$T/resolve.out" 2>"$T/resolve.err"
RRC=$?
stop_recv_c
[ "$RRC" = 3 ] || err "resolve answered by C: exit $RRC, want 3"
grep -q discarded "$T/resolve.out" && err "C's answer was taken: $(cat "$T/resolve.out")"
[ "$(state_on "$A" pin2)" = in_doubt ] || err "after C answered, pin2 on A is $(state_on "$A" pin2)"
[ "$(state_on "$B" pin2)" = running ] || err "B no longer runs pin2"
# The peers file changed after COMMIT: 'dst' now carries C's key (a
# re-enrolment, a restored backup, an attacker's edit) and C answers as
# 'dst'. The handshake passes (C is 'dst' by today's peers file); only the
# key recorded with COMMIT can tell, and C never heard of pin2: it would
# say "discarded" and the source would resume a VM that runs on B.
sed "s|^dst .*|dst $(cat "$C/host.key.pub")|" "$A/peers" >"$T/peers-rekeyed"
chmod 600 "$T/peers-rekeyed"
rm -f "$T/recvc.out"
"$SECMIG" --quiet recv --listen 127.0.0.1:0 --once --json --state-dir "$C" --name dst \
	--insecure-software-mode --defs "$C/defs" >"$T/recvc.out" 2>"$T/recvc.err" &
RECVC_PID=$!
PIDS+=($RECVC_PID)
for i in $(seq 200); do
	PORTC=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/recvc.out")
	[ -n "$PORTC" ] && break
	sleep 0.05
done
"$SECMIG" --quiet resolve --domain pin2 --to "127.0.0.1:$PORTC" --json --state-dir "$A" \
	--name src --peers "$T/peers-rekeyed" >"$T/resolve.out" 2>"$T/resolve.err"
RRC=$?
stop_recv_c
[ "$RRC" = 3 ] || err "resolve answered by C enrolled as dst: exit $RRC, want 3"
grep -q "with the key recorded then" "$T/resolve.err" ||
	err "re-keyed dst: no word of the recorded key: $(cat "$T/resolve.err")"
grep -q discarded "$T/resolve.out" && err "C (as dst) was believed: $(cat "$T/resolve.out")"
[ "$(state_on "$A" pin2)" = in_doubt ] || err "after C as dst, pin2 on A is $(state_on "$A" pin2)"
[ -n "$(ls "$C"/outcomes 2>/dev/null)" ] && err "C was asked about pin2: $(ls "$C"/outcomes)"
start_recv
"$SECMIG" --quiet resolve --domain pin2 --to "127.0.0.1:$PORT" --json --state-dir "$A" \
	--name src >"$T/resolve.out" 2>"$T/resolve.err"
RRC=$?
# answered (or never asked, if pin2 was wrongly settled above): done
kill "$RECV_PID" 2>/dev/null
wait "$RECV_PID" 2>/dev/null
[ "$RRC" = 0 ] || { err "resolve with dst: exit $RRC"; cat "$T/resolve.err"; }
grep -q running_on_destination "$T/resolve.out" || err "resolve: $(cat "$T/resolve.out")"
expect_on B pin2 "resolve pinned to dst"

# ---- 3. a foreign RESOLVE for a migration in flight ------------------------
# B serves sessions in a row; the sender holds its COMMIT record (stalled
# right after it), so B's record is still 'receiving'. C, enrolled at B as
# 'evil', asks about that migration id (read from A's record, as a host
# that learnt it would).
vm pin3 8M hotspot 2M
"$SECMIG" recv --listen 127.0.0.1:0 --json --state-dir "$B" --name dst \
	--insecure-software-mode --defs "$B/defs" >"$T/recvs.out" 2>"$T/recvs.err" &
RS_PID=$!
PIDS+=($RS_PID)
for i in $(seq 200); do
	PORT=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/recvs.out")
	[ -n "$PORT" ] && break
	sleep 0.05
done
SMG_FI=src_after_commit SMG_FI_STALL_MS=120000 "$SECMIG" send --to "127.0.0.1:$PORT" \
	--peer dst --domain pin3 --json --state-dir "$A" --name src --on-no-converge extend \
	>"$T/send.out" \
	2>"$T/send.err" &
SPID=$!
PIDS+=($SPID)
for i in $(seq 400); do [ "$(state_on "$A" pin3)" = in_doubt ] && break; sleep 0.05; done
[ "$(state_on "$A" pin3)" = in_doubt ] || err "pin3: COMMIT never recorded"
"$SECMIG" --quiet resolve --domain pin3 --to "127.0.0.1:$PORT" --json --state-dir "$A" \
	--key "$C/host.key" --peers "$C/peers" --name evil >"$T/evil.out" 2>"$T/evil.err"
ERC=$?
[ "$ERC" = 3 ] || err "foreign resolve: exit $ERC, want 3"
grep -q "refused" "$T/evil.err" || err "foreign resolve: $(cat "$T/evil.err")"
[ "$(state_on "$A" pin3)" = in_doubt ] || err "the foreign resolve settled pin3 on A"
# secmig cancel is refused past COMMIT; it also wakes the stalled sender
"$SECMIG" cancel --domain pin3 --state-dir "$A" >"$T/cancel.out" 2>"$T/cancel.err"
CRC=$?
[ "$CRC" = 1 ] || err "cancel past COMMIT: exit $CRC, want 1"
grep -q "past COMMIT" "$T/cancel.err" || err "cancel: $(cat "$T/cancel.err")"
wait "$SPID"
RC=$?
[ "$RC" = 0 ] || { err "pin3 after the foreign resolve: send exit $RC"; tail -3 "$T/send.err"; }
grep -q "cannot be cancelled" "$T/send.err" || err "the sender did not report the deferred cancel"
kill "$RS_PID" 2>/dev/null
wait "$RS_PID" 2>/dev/null
grep -q "not the source of that migration" "$T/recvs.err" || err "B did not log the refusal"
expect_on B pin3 "foreign resolve refused"

[ $fail = 0 ] && echo "engine pinning: all checks passed"
exit $fail
