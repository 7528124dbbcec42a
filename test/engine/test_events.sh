#!/usr/bin/env bash
# Every event the migration commands print with --json is checked against
# docs/events.md (test/engine/events_check.py reads its tables): one run of
# each kind of line, then the schema check over all of them, which also
# fails when a kind never showed up.
. "$SMG_SRC/test/engine/lib.sh"
OUT=$T/events
mkdir -p "$OUT"
keep() { cp "$1" "$OUT/$2"; }

# A migration that ticks (a threaded round under a cap), misses a tiny
# budget and says so, and succeeds: phase, round, progress, info, result.
vm ev1 32M hotspot 2M
start_recv
send ev1 --bandwidth 8M --max-downtime 1 --max-rounds 3 --on-no-converge extend
wait "$RECV_PID"
[ "$RC" = 0 ] || err "ev1: send exit $RC"
keep "$T/send.out" ev1.send
keep "$T/recv.out" ev1.recv

# A refusal: result lines with failed_host, reason, error, detail.
vm ev2 8M idle 0
"$SECMIG" sim --state-dir "$B" create "$T/ev2.cfg" >/dev/null
start_recv
send ev2
wait "$RECV_PID"
[ "$RC" = 15 ] || err "ev2: send exit $RC, want 15"
keep "$T/send.out" ev2.send
keep "$T/recv.out" ev2.recv

# In doubt, then resolve --json.
vm ev3 8M hotspot 2M
start_recv SMG_FI=dst_no_done
send ev3
wait "$RECV_PID"
[ "$RC" = 9 ] || err "ev3: send exit $RC, want 9"
keep "$T/send.out" ev3.send
start_recv
"$SECMIG" --quiet resolve --domain ev3 --to "127.0.0.1:$PORT" --json --state-dir "$A" --name src \
	>"$OUT/ev3.resolve" 2>"$T/resolve.err" || err "ev3: resolve $(cat "$T/resolve.err")"
wait "$RECV_PID"

# status, tune and cancel --json on a running migration; an unknown one.
vm ev4 16M hotspot 2M
start_recv
"$SECMIG" --quiet send --to "127.0.0.1:$PORT" --peer dst --domain ev4 --json \
	--state-dir "$A" --name src --bandwidth 1M >"$T/send.out" 2>"$T/send.err" &
SPID=$!
PIDS+=($SPID)
for i in $(seq 400); do grep -q '"event":"progress"' "$T/send.out" && break; sleep 0.05; done
"$SECMIG" status --json --state-dir "$A" >"$OUT/ev4.status"
"$SECMIG" tune --domain ev4 --bandwidth 2M --json --state-dir "$A" >"$OUT/ev4.tune" ||
	err "tune: $(cat "$OUT/ev4.tune")"
"$SECMIG" cancel --domain ev4 --json --state-dir "$A" >"$OUT/ev4.cancel" ||
	err "cancel: $(cat "$OUT/ev4.cancel")"
"$SECMIG" cancel 00000000000000000000000000000000 --json --state-dir "$A" \
	>"$OUT/ev4.cancel-unknown"
[ $? = 12 ] || err "cancel of an unknown id: not exit 12"
wait "$SPID"
[ $? = 13 ] || err "ev4: cancelled send did not exit 13"
wait "$RECV_PID"
keep "$T/send.out" ev4.send
keep "$T/recv.out" ev4.recv

python3 "$SMG_SRC/test/engine/events_check.py" "$SMG_SRC/docs/events.md" "$OUT"/* \
	>"$T/check.out" 2>&1 || err "schema: $(cat "$T/check.out")"
cat "$T/check.out" | tail -n 1
for k in phase/send phase/recv round/send progress/send info/send result/send result/recv \
	listening/- result/resolve status/- result/cancel result/tune; do
	grep -q " $k\( \|$\)" "$T/check.out" || err "no '$k' line was checked"
done

[ $fail = 0 ] && echo "engine events: all checks passed"
exit $fail
