#!/usr/bin/env bash
# Operator tickets through real migrations on loopback: operators enrolled
# by an admin on both hosts, "tickets required" in both policies. A valid
# ticket migrates (its digest and operator in both records); a replayed
# one (at the source, then at the destination), a forged, an expired, a
# wrong-scope (VM, destination, the operator's own scope) and a wrong-role
# ticket, a revoked operator (on both hosts, then on the destination only),
# and no ticket at all are each refused with exit 5 on both sides before
# any VM byte, the VM still running on the source, and logged as a
# refused attempt on both hosts.
. "$SMG_SRC/test/engine/lib.sh"

K=$T/keys
mkdir -p "$K"
for k in root alice bob eve; do "$SECMIG" keygen "$K/$k.key" >/dev/null || exit 1; done
OPS=$T/operators
"$SECMIG" operator admin --name root --key "$K/root.key.pub" --file "$OPS" >/dev/null &&
	"$SECMIG" operator enrol --admin root --admin-key "$K/root.key" --name alice \
		--key "$K/alice.key.pub" --vms 'web-*' --from region=eu --to 'region=eu' \
		--file "$OPS" >/dev/null &&
	"$SECMIG" operator enrol --admin root --admin-key "$K/root.key" --name bob \
		--key "$K/bob.key.pub" --vms '*' --file "$OPS" >/dev/null ||
	{ echo "FAIL: enrolling operators"; exit 1; }
cp "$OPS" "$T/operators-no-revoke"
"$SECMIG" operator revoke --admin root --admin-key "$K/root.key" --name bob --file "$OPS" \
	>/dev/null || { echo "FAIL: revoke"; exit 1; }
cp "$OPS" "$A/operators"
cp "$OPS" "$B/operators"
"$SECMIG" operator list --file "$OPS" | grep -q "bob .*REVOKED" || err "list does not show bob revoked"

policy() { # FILE HOST PEER [extra lines]
	local f=$1 host=$2 peer=$3; shift 3
	{
		echo "host $host"; echo "mode software"; echo "label region=eu"
		for l in "$@"; do echo "$l"; done
		echo "peer $peer"; echo "  label region=eu"; echo "  send web-* db-*"
	} >"$f"
}
policy "$A/policy" src dst "tickets required"
policy "$B/policy" dst src "tickets required"
policy "$T/a-optional" src dst

recv_p() { # [recv flags]
	rm -f "$T/recv.out"
	"$SECMIG" recv --listen 127.0.0.1:0 --once --json --state-dir "$B" \
		--policy "$B/policy" --defs "$B/defs" "$@" >"$T/recv.out" 2>"$T/recv.err" &
	RECV_PID=$!
	PIDS+=($RECV_PID)
	PORT=
	for _ in $(seq 200); do
		PORT=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/recv.out" 2>/dev/null)
		[ -n "$PORT" ] && break
		sleep 0.05
	done
	[ -n "$PORT" ] || err "receiver did not start"
}
send_t() { # NAME [send flags]
	local name=$1; shift
	"$SECMIG" send --to "127.0.0.1:$PORT" --peer dst --domain "$name" --json --state-dir "$A" \
		--policy "$A/policy" "$@" >"$T/send.out" 2>"$T/send.err"
	RC=$?
	wait "$RECV_PID"
	RRC=$?
}
ticket() { # OUT KEY OPERATOR VM TO [NOT-AFTER]
	rm -f "$1"
	"$SECMIG" ticket sign --key "$2" --operator "$3" --vm "$4" --from src --to "$5" \
		--not-after "${6:-+10m}" --out "$1" 2>/dev/null || err "ticket sign $3 $4"
}
last_record() { "$SECMIG" audit show --json --state-dir "$1" | tail -n 1; }
refused() { # VM WHAT PATTERN
	[ "$RC" = 5 ] || err "$2: send exit $RC, want 5"
	[ "$RRC" = 5 ] || err "$2: recv exit $RRC, want 5"
	grep -q -- "$3" "$T/send.err" "$T/recv.err" || err "$2: no '$3' in the logs"
	grep -q '"event":"round"' "$T/send.out" && err "$2: pages were sent"
	expect_on A "$1" "$2"
	last_record "$A" | grep -q '"outcome":"refused"' || err "$2: no refused record on the source"
	last_record "$B" | grep -q '"outcome":"refused"' || err "$2: no refused record on the destination"
}

# 1. a valid ticket: migrates; both records carry its digest and operator
vm web-1 16M uniform 5M
ticket "$T/t1" "$K/alice.key" alice web-1 dst
"$SECMIG" ticket show "$T/t1" | grep -q "^operator alice" || err "ticket show"
recv_p
send_t web-1 --ticket "$T/t1"
[ "$RC" = 0 ] && [ "$RRC" = 0 ] || err "valid ticket: send $RC recv $RRC"
expect_on B web-1 "valid ticket"
D=$("$SECMIG" ticket show "$T/t1" | sed -n 's/^digest //p')
for h in "$A" "$B"; do
	last_record "$h" | grep -q "\"ticket\":\"$D\"" || err "record on $h lacks the ticket digest"
	last_record "$h" | grep -q '"operator":"alice"' || err "record on $h lacks the operator"
done
"$SECMIG" sim --state-dir "$B" destroy web-1 >/dev/null || err "destroy web-1 on B"

# 1b. a plan the destination's definitions refuse (a MAC it never offered)
# does not spend the ticket on either host: the same ticket then migrates
vm web-3 16M idle 0 "nic = mac=02:00:00:00:00:01,ipv4=10.9.0.1"
ticket "$T/t1b" "$K/alice.key" alice web-3 dst
recv_p
send_t web-3 --ticket "$T/t1b"
refused web-3 "plan refused" "MAC 02:00:00:00:00:01"
last_record "$B" | grep -q '"stage":"plan"' || err "plan refused: B's record: $(last_record "$B")"
"$SECMIG" sim --state-dir "$A" destroy web-3 >/dev/null || err "destroy web-3 on A"
vm web-3 16M idle 0
recv_p
send_t web-3 --ticket "$T/t1b"
[ "$RC" = 0 ] && [ "$RRC" = 0 ] ||
	err "the ticket of a refused plan: send $RC recv $RRC: $(tail -2 "$T/send.err")"
"$SECMIG" sim --state-dir "$B" destroy web-3 >/dev/null || err "destroy web-3 on B"

# 2. the same ticket again (a new web-1 on the source): the source refuses
vm web-1 16M idle 0
recv_p
send_t web-1 --ticket "$T/t1"
refused web-1 "replay at the source" "already used"
# 3. and with the source's cache gone, the destination refuses it too
mv "$A/audit/tickets-used" "$T/used-a"
recv_p
send_t web-1 --ticket "$T/t1"
refused web-1 "replay at the destination" "already used"
grep -q "already used" "$T/recv.err" || err "the destination did not refuse the replay itself"
mv "$T/used-a" "$A/audit/tickets-used"

# 4. forged: eve signs in alice's name
ticket "$T/t4" "$K/eve.key" alice web-1 dst
recv_p
send_t web-1 --ticket "$T/t4"
refused web-1 "forged" "not operator 'alice''s enrolled key"
# 5. expired
ticket "$T/t5" "$K/alice.key" alice web-1 dst "@$(($(date +%s) - 60))"
recv_p
send_t web-1 --ticket "$T/t5"
refused web-1 "expired" "expired"
# 6. wrong scope: another VM's ticket, another destination's, outside alice's VMs
vm web-2 16M idle 0
ticket "$T/t6" "$K/alice.key" alice web-2 dst
recv_p
send_t web-1 --ticket "$T/t6"
refused web-1 "wrong VM" "it is for VM 'web-2', not 'web-1'"
ticket "$T/t6b" "$K/alice.key" alice web-1 dst2
recv_p
send_t web-1 --ticket "$T/t6b"
refused web-1 "wrong destination" "it is for src -> dst2"
vm db-1 16M idle 0
ticket "$T/t6c" "$K/alice.key" alice db-1 dst
recv_p
send_t db-1 --ticket "$T/t6c"
refused db-1 "outside the operator's scope" "may not migrate VM 'db-1'"
# 7. wrong role: the admin signs a ticket
ticket "$T/t7" "$K/root.key" root web-1 dst
recv_p
send_t web-1 --ticket "$T/t7"
refused web-1 "wrong role" "has role admin"
# 8. revoked operator
ticket "$T/t8" "$K/bob.key" bob web-1 dst
recv_p
send_t web-1 --ticket "$T/t8"
refused web-1 "revoked" "operator 'bob' is revoked"
# 9. revoked on the destination only: it refuses on its own
ticket "$T/t9" "$K/bob.key" bob web-2 dst
recv_p
send_t web-2 --ticket "$T/t9" --operators "$T/operators-no-revoke"
refused web-2 "revoked at the destination" "operator 'bob' is revoked"
grep -q "operator 'bob' is revoked" "$T/recv.err" || err "the destination did not refuse bob itself"
# 10. no ticket: refused where it is required (the source first; then a
# source that does not require one meets the destination's policy)
recv_p
send_t web-1
refused web-1 "no ticket" "requires a migration ticket"
recv_p
"$SECMIG" send --to "127.0.0.1:$PORT" --peer dst --domain web-1 --json --state-dir "$A" \
	--policy "$T/a-optional" >"$T/send.out" 2>"$T/send.err"
RC=$?
wait "$RECV_PID"; RRC=$?
refused web-1 "no ticket (destination's knob)" "requires a migration ticket"
grep -q "requires a migration ticket" "$T/recv.err" || err "the destination did not require it itself"

# the refusals are counted where the ticket was refused (9 by the source,
# 3 by the destination); each host logged all 13 refused attempts (the
# plan refusal too)
for h in "A $A 9" "B $B 3"; do
	set -- $h
	"$SECMIG" audit counters --json --state-dir "$2" >"$T/counters"
	grep -q "\"bad_ticket\":$3," "$T/counters" || err "$1 counters: $(cat "$T/counters")"
	grep -q '"refused":13,' "$T/counters" || err "$1 refused count: $(cat "$T/counters")"
	[ "$("$SECMIG" audit show --state-dir "$2" | grep -c 'outcome=refused')" = 13 ] ||
		err "$1: want 13 refused records"
done
"$SECMIG" audit verify --state-dir "$A" --peer-log "$B/audit/audit.log" >"$T/verify.out" 2>&1 ||
	{ err "audit verify across hosts failed"; cat "$T/verify.out"; }
exit $fail
