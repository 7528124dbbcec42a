#!/usr/bin/env bash
# Signed evidence through real migrations on loopback (software-key mode):
# a migration's two audit records verify across hosts; a manifest that is
# unsigned, tampered or signed by the wrong key, and a receipt that is
# unsigned, tampered or signed by the wrong key (SMG_FI evidence faults),
# each abort with exit 7 on both sides before anything resumes: the source
# VM runs and verifies, the destination holds nothing, and both hosts'
# records name the failure.
. "$SMG_SRC/test/engine/lib.sh"

verify_both() { # WHAT: both logs verify, each against the other
	"$SECMIG" audit verify --state-dir "$A" --peer-log "$B/audit/audit.log" \
		--peer-key "$B/host.key.pub" >"$T/verify.out" 2>&1 ||
		{ err "$1: audit verify (A with B) failed"; cat "$T/verify.out"; }
	"$SECMIG" audit verify --state-dir "$B" --peer-log "$A/audit/audit.log" \
		--peer-key "$A/host.key.pub" >"$T/verify.out" 2>&1 ||
		{ err "$1: audit verify (B with A) failed"; cat "$T/verify.out"; }
}
last_record() { # HOSTDIR -> the last record, as JSON
	"$SECMIG" audit show --json --state-dir "$1" | tail -n 1
}

# 1. success: both halves recorded, cross-verified, the pair counted
vm ok1 16M uniform 5M
start_recv
send ok1
wait "$RECV_PID"; RRC=$?
[ "$RC" = 0 ] && [ "$RRC" = 0 ] || err "success: send $RC recv $RRC"
expect_on B ok1 "success"
last_record "$A" | grep -q '"outcome":"done"' || err "source record lacks outcome done"
last_record "$B" | grep -q '"outcome":"resumed"' || err "destination record lacks resumed"
last_record "$A" | grep -q '"receipt_sig":' || err "source record lacks the receipt"
last_record "$B" | grep -q '"manifest_sig":' || err "destination record lacks the manifest signature"
verify_both success
grep -q "1 migration verified on both hosts" "$T/verify.out" || err "the pair was not cross-checked"
# the destination's half removed from (a copy of) its log: the cross-check
# names the migration whose half is missing
ID=$(last_record "$A" | sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p')
grep -v "\"id\":\"$ID\"" "$B/audit/audit.log" >"$T/b-cut.log"
"$SECMIG" audit verify --state-dir "$A" --peer-log "$T/b-cut.log" >"$T/verify.out" 2>&1
[ $? = 7 ] || err "a deleted half: verify did not exit 7"
grep -q "migration $ID: the peer's log has no half of it" "$T/verify.out" ||
	{ err "the deleted half was not named"; cat "$T/verify.out"; }

# 2. every evidence fault: exit 7 both sides, nothing resumed
n=1
for f in audit_manifest_unsigned audit_manifest_sig_flip audit_manifest_wrong_key \
	audit_receipt_unsigned audit_receipt_sig_flip audit_receipt_wrong_key; do
	n=$((n + 1))
	name=ev$n
	vm "$name" 16M uniform 5M
	case $f in
	audit_manifest_*) start_recv; SMG_FI=$f send "$name" ;;
	*) start_recv SMG_FI=$f; send "$name" ;;
	esac
	wait "$RECV_PID"; RRC=$?
	[ "$RC" = 7 ] || err "$f: send exit $RC, want 7"
	[ "$RRC" = 7 ] || err "$f: recv exit $RRC, want 7"
	expect_on A "$name" "$f"
	case $f in
	*unsigned) want="unsigned" ;;
	*) want="signature invalid" ;;
	esac
	grep -q "$want" "$T/send.err" "$T/recv.err" || err "$f: no '$want' in the logs"
	last_record "$A" | grep -q '"outcome":"aborted"' || err "$f: source record not aborted"
	last_record "$B" | grep -q '"outcome":"discarded"' || err "$f: destination record not discarded"
	last_record "$A" | grep -q '"error":"integrity' || err "$f: source record lacks the integrity error"
done
# the host that saw the bad signature counted it
"$SECMIG" audit counters --json --state-dir "$B" | grep -q '"bad_signature":3' ||
	err "destination did not count 3 bad manifest signatures: $("$SECMIG" audit counters --json --state-dir "$B")"
"$SECMIG" audit counters --json --state-dir "$A" | grep -q '"bad_signature":3' ||
	err "source did not count 3 bad receipt signatures"
# failed attempts are recorded consistently on both hosts too
verify_both "after the faults"
grep -q "7 migrations verified on both hosts" "$T/verify.out" ||
	err "want 7 pairs cross-checked: $(tail -n 1 "$T/verify.out")"

# 3. tampering with a copy of the source's log (8 records: open, 7 attempts):
# `secmig audit verify` exits 7 and names the record
L=$A/audit/audit.log
tamper() { # WHAT EXPECTED-LINE-PREFIX: verify $T/t.log against A's key and head
	"$SECMIG" audit verify --key "$A/host.key.pub" --head "$A/audit/audit.head" "$T/t.log" \
		>"$T/tamper.out" 2>&1
	[ $? = 7 ] || err "$1: verify did not exit 7"
	grep -q "^$T/t.log:$2" "$T/tamper.out" || { err "$1: want '$2'"; cat "$T/tamper.out"; }
	[ -n "${SMG_TEST_SHOW:-}" ] && { echo "== $1"; cat "$T/tamper.out"; }
}
cp "$L" "$T/t.log"
"$SECMIG" audit verify --key "$A/host.key.pub" --head "$A/audit/audit.head" "$T/t.log" \
	>"$T/tamper.out" 2>&1 || { err "the intact copy does not verify"; cat "$T/tamper.out"; }
sed '2s/"domain":"ok1"/"domain":"ok9"/' "$L" >"$T/t.log"
tamper edit "2: record 2: signature invalid"
sed '3d' "$L" >"$T/t.log"
tamper delete "3: record 4: records 3..3 are missing"
awk 'NR==3{h=$0; next} NR==4{print; print h; next} {print}' "$L" >"$T/t.log"
tamper reorder "4: record 3: out of order after record 4"
head -n 6 "$L" >"$T/t.log"
tamper truncate "7: record 7: the log ends at record 6 but its head names record 8"
head -c -30 "$L" >"$T/t.log"
tamper "truncate mid-record" "8: record 8: incomplete record"
{ head -n 4 "$L"; sed -n 3p "$B/audit/audit.log"; tail -n +5 "$L"; } >"$T/t.log"
tamper splice "5: record 3: signed by another key"
exit $fail
