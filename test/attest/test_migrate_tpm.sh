#!/usr/bin/env bash
# End to end: `secmig send`/`recv` with --policy over loopback, each host with
# its own real swtpm, enrolled with `secmig tpm-enroll`. Success in TPM mode;
# policy denies peer / domain / placement (exit 5 on both sides, the source
# VM keeps running and verifies, the destination holds nothing); TPM required
# but the peer in software mode (exit 4); PCRs changed on the sender after
# enrolment (exit 4, refused before any VM data).
command -v swtpm >/dev/null && command -v tpm2_pcrextend >/dev/null || exit 77
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
"$SECMIG" tpm-enroll --tcti "$TA" --pcrs 0,7,16 --name src --label region=eu-west >"$T/enrol-a" ||
	{ echo "FAIL: enrol src"; exit 1; }
"$SECMIG" tpm-enroll --tcti "$TB" --pcrs 0,7,16 --name dst --label region=eu-west \
	--label tier=gold >"$T/enrol-b" || { echo "FAIL: enrol dst"; exit 1; }

# policy FILE HOST TCTI LABELS PEER-BLOCK [send line]
policy() {
	{
		echo "host $2"; echo "tcti $3"; echo "pcrs 0,7,16"; echo "label $4"
		grep -v '^#' "$5"
		[ -n "${6:-}" ] && echo "  send $6"
	} >"$1"
}
policy "$A/policy" src "$TA" "region=eu-west" "$T/enrol-b"
policy "$B/policy" dst "$TB" "region=eu-west tier=gold" "$T/enrol-a" "web-* db1"
"$SECMIG" config check "$A/policy" >/dev/null && "$SECMIG" config check "$B/policy" >/dev/null ||
	{ echo "FAIL: the generated policies do not check"; exit 1; }

# recv_p POLICY [flags]: a --once receiver on B with a policy; RECV_PID, PORT
recv_p() {
	local pol=$1; shift
	rm -f "$T/recv.out"
	"$SECMIG" recv --listen 127.0.0.1:0 --once --json --check-memory \
		--state-dir "$B" --policy "$pol" --defs "$B/defs" "$@" >"$T/recv.out" 2>"$T/recv.err" &
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
recv_rc() { wait "$RECV_PID"; RRC=$?; }
recv_stop() { kill "$RECV_PID" 2>/dev/null; wait "$RECV_PID" 2>/dev/null; }
sendp() { # NAME [flags]
	local name=$1; shift
	"$SECMIG" send --to "127.0.0.1:$PORT" --peer dst --on-no-converge extend --domain "$name" --json \
		--state-dir "$A" --check-memory --policy "$A/policy" "$@" >"$T/send.out" 2>"$T/send.err"
	RC=$?
}

# 1. success in TPM mode; the result carries the handshake time
vm web-1 16M uniform 5M "placement = region=eu-west region=eu-central"
recv_p "$B/policy"
sendp web-1
recv_rc
[ "$RC" = 0 ] || err "tpm mode: send exit $RC"
[ "$RRC" = 0 ] || err "tpm mode: recv exit $RRC"
grep -q "TPM mode: sessions bound" "$T/send.err" || err "tpm mode not logged on the sender"
result | grep -Eq '"handshake_ms":[0-9]+\.[0-9]' || err "no handshake_ms in the result"
expect_on B web-1 "tpm mode"

# 1b. in doubt in TPM mode (DONE lost): resolve takes --policy, settles it
# over a TPM-bound session (before, it had no --policy and the VM stayed
# paused)
vm web-3 16M uniform 5M
rm -f "$T/recv.out"
env SMG_FI=dst_no_done "$SECMIG" recv --listen 127.0.0.1:0 --once --json --state-dir "$B" \
	--policy "$B/policy" --defs "$B/defs" >"$T/recv.out" 2>"$T/recv.err" &
RECV_PID=$!
PIDS+=($RECV_PID)
for _ in $(seq 200); do
	PORT=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/recv.out" 2>/dev/null)
	[ -n "$PORT" ] && break
	sleep 0.05
done
sendp web-3
recv_rc
[ "$RC" = 9 ] || err "tpm in doubt: send exit $RC, want 9"
recv_p "$B/policy"
"$SECMIG" resolve --domain web-3 --to "127.0.0.1:$PORT" --json --state-dir "$A" \
	--policy "$A/policy" >"$T/resolve.out" 2>"$T/resolve.err"
RRC2=$?
recv_rc
[ "$RRC2" = 0 ] || { err "tpm resolve: exit $RRC2"; tail -3 "$T/resolve.err"; }
grep -q running_on_destination "$T/resolve.out" || err "tpm resolve: $(cat "$T/resolve.out")"
grep -q "TPM mode: sessions bound" "$T/resolve.err" || err "resolve did not run in TPM mode"
expect_on B web-3 "tpm resolve"

# denied: exit 5 both sides, source keeps the VM, destination holds nothing
denied() { # NAME WHAT PATTERN
	recv_rc
	[ "$RC" = 5 ] || err "$2: send exit $RC, want 5"
	[ "$RRC" = 5 ] || err "$2: recv exit $RRC, want 5"
	grep -q "$3" "$T/send.err" "$T/recv.err" || err "$2: no '$3' in the logs"
	grep -q '"event":"round"' "$T/send.out" && err "$2: pages were sent"
	expect_on A "$1" "$2"
}
# 2. domain not in the peer's send list
vm mail-1 16M uniform 5M
recv_p "$B/policy"
sendp mail-1
denied mail-1 "deny domain" "may not send domain 'mail-1'"
# 3. placement: the VM allows only region=us-east; dst is eu-west. The
# sender's own check refuses first; the receiver learns it from the ABORT.
vm db1 16M uniform 5M "placement = region=us-east"
recv_p "$B/policy"
sendp db1
denied db1 "deny placement (sender)" "does not carry an allowed 'region' label"
grep -q "policy refuses to send db1" "$T/send.err" || err "placement: sender did not refuse"
# 3b. a sender whose policy wrongly enrols dst in us-east: the receiver refuses
sed 's/^  label region=eu-west/  label region=us-east/' "$A/policy" >"$T/a-stale"
recv_p "$B/policy"
sendp db1 --policy "$T/a-stale"
denied db1 "deny placement (receiver)" "does not carry an allowed 'region' label"
grep -q "policy refuses db1 from 'src'" "$T/recv.err" || err "placement: receiver did not refuse"
# 4. peer without a send line
policy "$T/b-nosend" dst "$TB" "region=eu-west tier=gold" "$T/enrol-a"
vm web-2 16M uniform 5M
recv_p "$T/b-nosend"
sendp web-2
denied web-2 "deny peer" "may not send to this host"

# 5. TPM required, the sender runs software mode: refused at the handshake
{ echo "host src"; echo "mode software"; echo "peer dst"; } >"$T/a-soft"
recv_p "$B/policy"
"$SECMIG" send --to "127.0.0.1:$PORT" --peer dst --domain web-2 --json --state-dir "$A" \
	--policy "$T/a-soft" >"$T/send.out" 2>"$T/send.err"
RC=$?
[ "$RC" = 4 ] || err "software peer: send exit $RC, want 4"
grep -q "software-key mode" "$T/send.err" || err "software opt-in not logged"
sleep 0.3
grep -q "does not offer tpm mode" "$T/recv.err" || err "receiver did not name the missing TPM mode"
recv_stop
expect_on A web-2 "software peer"

# 6. the sender's PCRs change after enrolment: its TPM refuses the key
TPM2TOOLS_TCTI=$TA tpm2_pcrextend 16:sha256=$(printf 'cd%.0s' $(seq 32)) || err "pcrextend"
recv_p "$B/policy"
sendp web-2
[ "$RC" = 4 ] || err "changed PCRs: send exit $RC, want 4"
grep -q "PCR" "$T/send.err" || err "changed PCRs: no PCR message"
recv_stop
grep -q '"event":"phase"' "$T/send.out" && err "changed PCRs: migration started"
expect_on A web-2 "changed PCRs"
[ -n "${SMG_TEST_DEBUG:-}" ] && { cat "$T"/send.err "$T"/recv.err; cp -r "$T" /tmp/attest2-dbg; }
exit $fail
