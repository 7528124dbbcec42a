#!/usr/bin/env bash
# Signed evidence in TPM-bound mode, each host with its own real swtpm:
# the destination's receipt is countersigned by its TPM's attestation key
# (TPM2_Hash + TPM2_Sign with the restricted AK); the source checks it
# against the AK enrolled in its policy before COMMIT. A receipt without
# the AK signature, with a tampered one, or signed by another P-256 key,
# and in TPM mode too a manifest signed by the wrong key or a receipt whose
# host signature was tampered with, abort with exit 7 on both sides, the
# source VM running.
command -v swtpm >/dev/null || exit 77
. "$SMG_SRC/test/engine/lib.sh"

SWPIDS=()
start_swtpm() { # DIR -> sets TCTI
	local dir=$1 port
	mkdir -p "$dir"
	for _ in $(seq 20); do
		port=$((20000 + RANDOM % 40000))
		if swtpm socket --tpm2 --server type=tcp,port=$port,bindaddr=127.0.0.1 \
			--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
			--tpmstate dir="$dir" --flags startup-clear --pid file="$dir/pid" -d 2>/dev/null; then
			SWPIDS+=("$(cat "$dir/pid")")
			TCTI="swtpm:host=127.0.0.1,port=$port"
			return 0
		fi
	done
	echo "FAIL: cannot start swtpm"
	exit 1
}
trap 'for p in "${SWPIDS[@]}"; do kill "$p" 2>/dev/null; done; cleanup' EXIT

start_swtpm "$T/tpm-a"
TA=$TCTI
start_swtpm "$T/tpm-b"
TB=$TCTI
"$SECMIG" tpm-enroll --tcti "$TA" --pcrs 0,7 --name src >"$T/enrol-a" || { echo "FAIL: enrol src"; exit 1; }
"$SECMIG" tpm-enroll --tcti "$TB" --pcrs 0,7 --name dst >"$T/enrol-b" || { echo "FAIL: enrol dst"; exit 1; }
{ echo "host src"; echo "tcti $TA"; echo "pcrs 0,7"; grep -v '^#' "$T/enrol-b"; } >"$A/policy"
{ echo "host dst"; echo "tcti $TB"; echo "pcrs 0,7"; grep -v '^#' "$T/enrol-a"; echo "  send tv*"; } >"$B/policy"

recv_tpm() { # [env...]
	rm -f "$T/recv.out"
	env "$@" "$SECMIG" recv --listen 127.0.0.1:0 --once --json --state-dir "$B" \
		--policy "$B/policy" --defs "$B/defs" >"$T/recv.out" 2>"$T/recv.err" &
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
send_tpm() { # NAME [env...]
	local name=$1; shift
	env "$@" "$SECMIG" send --to "127.0.0.1:$PORT" --peer dst --domain "$name" --json --state-dir "$A" \
		--policy "$A/policy" >"$T/send.out" 2>"$T/send.err"
	RC=$?
}
last_record() { "$SECMIG" audit show --json --state-dir "$1" | tail -n 1; }

# 1. success: AK-countersigned receipt in both records, verified across hosts
vm tv1 16M uniform 5M
recv_tpm
send_tpm tv1
wait "$RECV_PID"; RRC=$?
[ "$RC" = 0 ] && [ "$RRC" = 0 ] || err "tpm success: send $RC recv $RRC"
expect_on B tv1 "tpm success"
grep -q "receipt countersigned by the TPM's AK in" "$T/recv.err" || err "no AK countersignature logged"
[ -n "${SMG_TEST_SHOW:-}" ] && { grep -h "countersigned" "$T/recv.err"; tail -n 1 "$T/send.out"; }
for h in "$A" "$B"; do
	last_record "$h" | grep -q '"mode":"tpm"' || err "record on $h lacks mode tpm"
	last_record "$h" | grep -q '"receipt_tpm_sig":' || err "record on $h lacks the AK signature"
done
"$SECMIG" audit show --state-dir "$A" | tail -n 1 | grep -q "receipt=signed+AK" ||
	err "audit show does not show the AK-signed receipt"
"$SECMIG" audit verify --state-dir "$A" --peer-log "$B/audit/audit.log" >"$T/verify.out" 2>&1 ||
	{ err "tpm: cross verify failed"; cat "$T/verify.out"; }
grep -q "1 migration verified on both hosts" "$T/verify.out" || err "tpm: the pair was not checked"

# 2. the AK signature missing, tampered, or by another key, and the
# manifest and receipt host signatures in TPM mode: exit 7 both sides
n=1
for f in audit_receipt_tpm_unsigned audit_receipt_tpm_sig_flip audit_receipt_tpm_wrong_key \
	audit_manifest_wrong_key audit_receipt_sig_flip; do
	n=$((n + 1))
	vm "tv$n" 16M uniform 5M
	case $f in
	audit_manifest_*) recv_tpm; send_tpm "tv$n" SMG_FI=$f ;;
	*) recv_tpm SMG_FI=$f; send_tpm "tv$n" ;;
	esac
	wait "$RECV_PID"; RRC=$?
	[ "$RC" = 7 ] || err "$f: send exit $RC, want 7"
	[ "$RRC" = 7 ] || err "$f: recv exit $RRC, want 7"
	expect_on A "tv$n" "$f"
	case $f in
	*tpm_unsigned) want="carries no AK signature" ;;
	*tpm_*) want="AK signature invalid" ;;
	*) want="signature invalid" ;;
	esac
	grep -q "$want" "$T/send.err" "$T/recv.err" || err "$f: no '$want' in the logs"
	last_record "$A" | grep -q '"error":"integrity' || err "$f: source record lacks the integrity error"
done
"$SECMIG" audit counters --json --state-dir "$A" | grep -q '"bad_signature":4' ||
	err "source did not count 4 bad receipt signatures"
"$SECMIG" audit verify --state-dir "$B" --peer-log "$A/audit/audit.log" >"$T/verify.out" 2>&1 ||
	{ err "tpm: cross verify after the faults failed"; cat "$T/verify.out"; }
exit $fail
