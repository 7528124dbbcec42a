#!/usr/bin/env bash
# Suspicious activity becomes audit records and counters on the receiver,
# with the peer's address: an unknown peer's handshake, garbage instead of
# a handshake (rate-limited: 5 records per kind and address per minute,
# every one counted), and an AEAD tag failure in the middle of a migration
# (a proxy flips a byte on a data channel). `audit counters` reads them.
. "$SMG_SRC/test/engine/lib.sh"

"$SECMIG" keygen "$T/mallory.key" >/dev/null || exit 1
echo "dst $(cat "$B/host.key.pub")" >"$T/mallory-peers"

# a long-running receiver: refused handshakes do not end it
"$SECMIG" recv --listen 127.0.0.1:0 --json --state-dir "$B" --name dst \
	--insecure-software-mode --defs "$B/defs" \
	>"$T/recv.out" 2>"$T/recv.err" &
RECV_PID=$!
PIDS+=($RECV_PID)
for _ in $(seq 200); do
	PORT=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/recv.out" 2>/dev/null)
	[ -n "$PORT" ] && break
	sleep 0.05
done
[ -n "$PORT" ] || err "receiver did not start"

# 1. a host nobody enrolled
vm a1 16M idle 0
"$SECMIG" send --to "127.0.0.1:$PORT" --peer dst --domain a1 --state-dir "$A" --name mallory \
	--key "$T/mallory.key" --peers "$T/mallory-peers" >/dev/null 2>&1
[ $? = 3 ] || err "unknown peer: send did not exit 3"
# 2. eight connections of garbage from the same address
for _ in $(seq 8); do
	exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'GET / HTTP/1.0\r\n\r\n' >&3
	exec 3>&-
done
# the counters file is written synchronously with each event
for _ in $(seq 100); do
	"$SECMIG" audit counters --json --state-dir "$B" >"$T/counters"
	grep -q '"handshake_refused":9,' "$T/counters" && break
	sleep 0.1
done
grep -q '"handshake_refused":9,' "$T/counters" || err "want 9 refused handshakes: $(cat "$T/counters")"
grep -q '"unknown_peer":1,' "$T/counters" || err "want 1 unknown peer: $(cat "$T/counters")"
grep -q '"alerts_suppressed":3' "$T/counters" || err "want 3 suppressed: $(cat "$T/counters")"
"$SECMIG" audit show --state-dir "$B" >"$T/show"
grep -q 'alert .*peer=mallory peer_addr=127.0.0.1 kind=unknown_peer' "$T/show" ||
	{ err "no unknown_peer alert naming mallory"; cat "$T/show"; }
[ "$(grep -c 'kind=handshake_refused' "$T/show")" = 5 ] ||
	{ err "want 5 handshake_refused records (rate limit)"; cat "$T/show"; }
# 2b. slowloris: nine silent connections from one address (its cap is 8):
# the ninth takes the oldest one's slot (busy), the rest miss the
# first-frame deadline (handshake_timeout); each one an alert.
for i in $(seq 9); do
	eval "exec $((i + 10))<>/dev/tcp/127.0.0.1/$PORT"
done
for _ in $(seq 200); do
	"$SECMIG" audit show --state-dir "$B" >"$T/show"
	[ "$(grep -c 'kind=handshake_timeout' "$T/show")" -ge 5 ] && break
	sleep 0.1
done
for i in $(seq 9); do eval "exec $((i + 10))>&-"; done
grep -q 'alert .*peer_addr=127.0.0.1 kind=busy' "$T/show" ||
	{ err "no busy alert for the connection that lost its slot"; cat "$T/show"; }
[ "$(grep -c 'kind=handshake_timeout' "$T/show")" -ge 5 ] ||
	{ err "want handshake_timeout alerts for silent connections"; cat "$T/show"; }
kill "$RECV_PID"
wait "$RECV_PID" 2>/dev/null
# --since filters by time; rotation keeps the directory verifiable
"$SECMIG" audit show --state-dir "$B" --since -1h | grep -q 'kind=unknown_peer' ||
	err "show --since -1h lost the records"
[ -z "$("$SECMIG" audit show --state-dir "$B" --since +1h)" ] || err "show --since +1h shows records"
"$SECMIG" audit rotate --state-dir "$B" --name dst >/dev/null || err "audit rotate"

# 2c. a plan the destination's definitions refuse (a MAC B never offered):
# exit 5 on both sides, a refused record on each, B's with stage plan
last_record() { "$SECMIG" audit show --json --state-dir "$1" | tail -n 1; }
vm r1 16M idle 0 "nic = mac=02:00:00:00:00:01,ipv4=10.9.0.1"
start_recv
send r1
wait "$RECV_PID"; rrc=$?
[ "$RC" = 5 ] && [ "$rrc" = 5 ] || err "foreign MAC: send $RC recv $rrc, want 5 and 5"
last_record "$B" | grep '"outcome":"refused"' | grep '"stage":"plan"' |
	grep -q 'MAC 02:00:00:00:00:01' ||
	err "no refused record with the reason on B: $(last_record "$B")"
last_record "$A" | grep -q '"outcome":"refused"' || err "no refused record on A: $(last_record "$A")"
"$SECMIG" audit counters --json --state-dir "$B" | grep -q '"policy_denied":1,' ||
	err "plan refusal not counted: $("$SECMIG" audit counters --json --state-dir "$B")"

# 3. a tag failure: a byte flipped on the first data channel mid-round
vm a2 32M uniform 5M
RECV_LOG=--verbose start_recv
"$SMG_NETTOOL" proxy --listen 127.0.0.1:0 --to "127.0.0.1:$PORT" --fault corrupt \
	--conn 1 --dir c2s --at-byte 200000 >"$T/proxy" 2>&1 &
PIDS+=($!)
PP=
for _ in $(seq 100); do
	PP=$(sed -n 's/.*"proxy_ready","port":\([0-9]*\).*/\1/p' "$T/proxy")
	[ -n "$PP" ] && break
	sleep 0.05
done
[ -n "$PP" ] || err "proxy did not start"
PORT=$PP
send a2
wait "$RECV_PID"
XX
expect_on A a2 "tag failure"
"$SECMIG" audit counters --json --state-dir "$B" | grep -q '"tag_failure":1,' ||
	err "tag failure not counted: $("$SECMIG" audit counters --json --state-dir "$B")"
"$SECMIG" audit show --state-dir "$B" | tail -n 1 | grep -q 'peer=src peer_addr=127.0.0.1.*outcome=discarded' ||
	err "the tag failure's record: $("$SECMIG" audit show --state-dir "$B" | tail -n 1)"
"$SECMIG" audit verify --state-dir "$B" >"$T/verify.out" || { err "verify"; cat "$T/verify.out"; }
exit $fail
