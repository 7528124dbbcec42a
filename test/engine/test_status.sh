#!/usr/bin/env bash
# secmig status / cancel over the local control sockets (DESIGN §2, §9):
# every migration running on a host, both directions, with progress that
# moves during a round; the sockets are root-only (0700 directory, 0600
# socket, peer credentials checked).
. "$SMG_SRC/test/engine/lib.sh"
CHECK="python3 $SMG_SRC/test/engine/events_check.py $SMG_SRC/docs/events.md"

vm watched 32M hotspot 2M
"$SECMIG" --quiet recv --listen 127.0.0.1:0 --json --state-dir "$B" --name dst \
	--insecure-software-mode --defs "$B/defs" >"$T/recv.out" 2>"$T/recv.err" &
RS=$!
PIDS+=($RS)
for i in $(seq 200); do
	PORT=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/recv.out")
	[ -n "$PORT" ] && break
	sleep 0.05
done
# The sender holds after round 0 (SMG_FI; a cancel ends the hold) so the
# cancel below cannot come after the end on a loaded host.
SMG_FI=src_after_round0 SMG_FI_STALL_MS=120000 "$SECMIG" send --to "127.0.0.1:$PORT" \
	--peer dst --domain watched --json --state-dir "$A" --name src --bandwidth 2M \
	>"$T/send.out" 2>"$T/send.err" &
SPID=$!
PIDS+=($SPID)
for i in $(seq 400); do grep -q '"event":"progress"' "$T/send.out" && break; sleep 0.05; done
ID=$(sed -n 's/.*"migration_id":"\([0-9a-f]\{32\}\)".*/\1/p' "$T/send.out" | head -n 1)
[ -n "$ID" ] || err "no migration id"

# Both directions, from each host's own state directory.
"$SECMIG" status --state-dir "$A" >"$T/status-a.txt" || err "status A"
grep -q "^$ID send watched *dst *precopy" "$T/status-a.txt" ||
	err "status on A: $(cat "$T/status-a.txt")"
"$SECMIG" status --json --state-dir "$A" >"$T/status-a.json" || err "status --json A"
for i in $(seq 200); do
	"$SECMIG" status --json --state-dir "$B" >"$T/status-b.json"
	grep -q '"phase":"precopy"' "$T/status-b.json" && break
	sleep 0.05
done
grep -q "\"migration_id\":\"$ID\",\"role\":\"recv\",\"domain\":\"watched\",\"peer\":\"src\"" \
	"$T/status-b.json" || err "status on B: $(cat "$T/status-b.json")"
$CHECK "$T/status-a.json" "$T/status-b.json" >"$T/check.out" || { err "status schema"; cat "$T/check.out"; }
echo "status A: $(tail -n 1 "$T/status-a.txt")"

# Progress moves within round 0 (bytes, not rounds), and the ETA is known.
bytes() { "$SECMIG" status --json --state-dir "$A" | sed -n 's/.*"bytes":\([0-9]*\).*/\1/p'; }
b1=$(bytes)
for i in $(seq 400); do b2=$(bytes); [ "${b2:-0}" -gt "${b1:-0}" ] && break; sleep 0.05; done
[ "${b2:-0}" -gt "${b1:-0}" ] || err "status: bytes did not move ($b1 -> $b2)"
awk -F'"round_pct":' '/"event":"progress"/ && /"round":0,/ {split($2, a, ","); print a[1]}' \
	"$T/send.out" >"$T/pcts"
[ "$(sort -n -u "$T/pcts" | wc -l)" -ge 2 ] || err "progress did not move during round 0: $(cat "$T/pcts")"
grep '"event":"progress"' "$T/send.out" | grep -q '"eta_s":[0-9]' || err "no ETA in progress"

# Root-only: the directory, the socket, and the peer's credentials.
[ "$(stat -c %a "$A/control")" = 700 ] || err "control dir is $(stat -c %a "$A/control")"
SOCK=$(ls "$A"/control/*.sock | head -n 1)
[ "$(stat -c %a "$SOCK")" = 600 ] || err "socket is $(stat -c %a "$SOCK")"
if command -v setpriv >/dev/null; then
	# open the way on purpose: the server itself must still refuse nobody
	chmod 711 "$T" "$A"
	chmod 755 "$A/control"
	chmod 666 "$SOCK"
	setpriv --reuid=65534 --regid=65534 --clear-groups "$SECMIG" status --state-dir "$A" \
		>"$T/nobody.out" 2>&1
	chmod 700 "$A/control" "$T"
	chmod 600 "$SOCK"
	grep -q "$ID" "$T/nobody.out" && err "a non-root user saw the migration"
	grep -q "refused a non-root client" "$T/send.err" || err "the server did not refuse nobody"
fi

# cancel by domain from here ends it (exit 13 on both sides)
"$SECMIG" cancel --domain watched --state-dir "$A" >"$T/cancel.out" 2>&1 ||
	err "cancel: $(cat "$T/cancel.out")"
wait "$SPID"
RC=$?
[ "$RC" = 13 ] || err "cancelled send: exit $RC, want 13"
for i in $(seq 200); do grep -q '"event":"result"' "$T/recv.out" && break; sleep 0.05; done
tail -n 1 "$T/recv.out" | grep -q '"outcome":"cancelled"' || err "recv: $(tail -n 1 "$T/recv.out")"
"$SECMIG" status --state-dir "$A" | grep -q "no migration running" || err "status after the end"
expect_on A watched "cancelled from status"
kill "$RS" 2>/dev/null
wait "$RS" 2>/dev/null
$CHECK "$T/send.out" "$T/recv.out" >"$T/check.out" || { err "events schema"; cat "$T/check.out"; }
[ -z "$(ls "$A/control")" ] || err "a control socket was left behind: $(ls "$A/control")"

# The destination's operator cancels an incoming migration: both end with
# exit 13 and the source says which host cancelled.
vm inbound 16M hotspot 2M
"$SECMIG" --quiet recv --listen 127.0.0.1:0 --once --json --state-dir "$B" --name dst \
	--insecure-software-mode --defs "$B/defs" >"$T/recv.out" 2>"$T/recv.err" &
RS=$!
PIDS+=($RS)
for i in $(seq 200); do
	PORT=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/recv.out")
	[ -n "$PORT" ] && break
	sleep 0.05
done
"$SECMIG" --quiet send --to "127.0.0.1:$PORT" --peer dst --domain inbound --json \
	--state-dir "$A" --name src --bandwidth 2M >"$T/send.out" 2>"$T/send.err" &
SPID=$!
PIDS+=($SPID)
for i in $(seq 400); do
	"$SECMIG" status --json --state-dir "$B" | grep -q '"domain":"inbound"' && break
	sleep 0.05
done
"$SECMIG" status --json --state-dir "$B" | grep -q '"rate_Bps":[1-9]' ||
	err "the receiver's status shows no rate"
"$SECMIG" cancel --domain inbound --state-dir "$B" >"$T/cancel.out" 2>&1 ||
	err "cancel on B: $(cat "$T/cancel.out")"
wait "$SPID"
RC=$?
wait "$RS"
RRC=$?
[ "$RC" = 13 ] && [ "$RRC" = 13 ] || err "cancel on B: send $RC recv $RRC, want 13 13"
tail -n 1 "$T/send.out" | grep -q "\"failed_host\":\"destination\".*\"detail\":\"destination 'dst' aborted: cancelled on the destination" ||
	err "cancel on B: $(tail -n 1 "$T/send.out")"
for i in $(seq 50); do [ "$(state_on "$B" inbound)" = absent ] && break; sleep 0.05; done
expect_on A inbound "cancelled by the destination"

[ $fail = 0 ] && echo "engine status: all checks passed"
exit $fail
