#!/usr/bin/env bash
# recv's SIGHUP reload (issue 17 item 3; the unit's ExecReload): while a
# migration from src runs (held slow with a 1M/s cap, then let go with
# `secmig tune`), a new source 'new' is enrolled in B's peers file and recv
# reloaded; the migration in flight and one from the new peer both
# succeed. A reload with a broken peers file keeps the running snapshot
# (and says so); a reload that drops 'new' refuses it at once, while the
# migration from src, started on the first snapshot, still completes.
. "$SMG_SRC/test/engine/lib.sh"

N=$T/new
mkdir -p "$N"
"$SECMIG" keygen "$N/host.key" >/dev/null || exit 1
echo "dst $(cat "$B/host.key.pub")" >"$N/peers"
chmod 600 "$N/peers"
"$SECMIG" --quiet sim host --state-dir "$N" & PIDS+=($!)
for i in $(seq 100); do [ -S "$N/sim.sock" ] && break; sleep 0.05; done
cp "$B/peers" "$T/peers.orig"

# a service receiver on B (no --once): its JSON lines in recv.out
"$SECMIG" recv --listen 127.0.0.1:0 --json --max-concurrent 4 --state-dir "$B" \
	--name dst --insecure-software-mode --defs "$B/defs" >"$T/recv.out" 2>"$T/recv.err" &
RECV_PID=$!
PIDS+=($RECV_PID)
PORT=
for i in $(seq 200); do
	PORT=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/recv.out")
	[ -n "$PORT" ] && break
	sleep 0.05
done
[ -n "$PORT" ] || { err "receiver did not start"; exit 1; }

# send_new NAME: a migration from the new peer; sets NRC
send_new() {
	"$SECMIG" --quiet send --to "127.0.0.1:$PORT" --peer dst --domain "$1" --json \
		--state-dir "$N" --name new --on-no-converge extend \
		>"$T/new.out" 2>"$T/new.err"
	NRC=$?
}
# vm_new NAME: a small VM on the new peer's sim host
vm_new() {
	printf 'name = %s\nmemory = 8M\nvcpus = 1\nworkload = uniform\ndirty_rate = 1M\n' "$1" >"$T/$1.cfg"
	"$SECMIG" sim --state-dir "$N" create "$T/$1.cfg" >/dev/null || err "create $1"
}
# reloaded GEN | reload_failed GEN: wait for recv's event (hang guard only)
wait_event() {
	for i in $(seq 400); do
		grep -q "\"event\":\"$1\",\"generation\":$2" "$T/recv.out" && return 0
		kill -0 "$RECV_PID" 2>/dev/null || break
		sleep 0.05
	done
	err "no $1 event for generation $2 from recv"
	return 1
}

# 1. not enrolled yet: refused at the handshake (exit 3), its VM stays
vm_new n1
send_new n1
[ "$NRC" = 3 ] || err "unenrolled peer: send exit $NRC, want 3"
[ "$(state_on "$N" n1)" = running ] || err "n1 not running on the new peer after a refusal"

# 2. a migration from src in flight, held at 1M/s
vm big 16M uniform 2M
"$SECMIG" --quiet send --to "127.0.0.1:$PORT" --peer dst --domain big --json \
	--state-dir "$A" --name src --bandwidth 1M --on-no-converge extend \
	>"$T/send.out" 2>"$T/send.err" &
SPID=$!
PIDS+=($SPID)
for i in $(seq 400); do grep -q '"event":"progress"' "$T/send.out" && break; sleep 0.05; done
grep -q '"event":"progress"' "$T/send.out" || err "the migration from src made no progress"

# 3. enrol the new peer and reload: the new peer's migration succeeds
echo "new $(cat "$N/host.key.pub")" >>"$B/peers"
kill -HUP "$RECV_PID"
wait_event reloaded 2
kill -0 "$SPID" 2>/dev/null || err "the migration from src ended before the reload was tested"
send_new n1
[ "$NRC" = 0 ] || { err "enrolled by reload: send exit $NRC, want 0"; tail -n 3 "$T/new.err"; }
[ "$(state_on "$B" n1)" = running ] || err "n1 not running on B"
"$SECMIG" sim --state-dir "$B" verify n1 >/dev/null 2>&1 || err "n1 does not verify on B"

# 4. a broken peers file: the reload fails, snapshot 2 stays in effect
cp "$B/peers" "$T/peers.good"
echo "bad!name not-a-key" >>"$B/peers"
kill -HUP "$RECV_PID"
wait_event reload_failed 2
grep -q "reload failed" "$T/recv.err" || err "recv did not log why the reload failed"
vm_new n2
send_new n2
[ "$NRC" = 0 ] || err "after a failed reload: send exit $NRC, want 0 (snapshot 2 kept)"

# 5. drop the new peer: refused at once; src's migration (snapshot 1) goes on
cp "$T/peers.orig" "$B/peers"
kill -HUP "$RECV_PID"
wait_event reloaded 3
vm_new n3
send_new n3
[ "$NRC" = 3 ] || err "peer removed by reload: send exit $NRC, want 3"
[ "$(state_on "$N" n3)" = running ] || err "n3 not running on the new peer after a refusal"
kill -0 "$SPID" 2>/dev/null || err "the migration from src ended before the last reload"

# 6. let the first migration go: it completes on the snapshot it started with
ID=$(sed -n 's/.*"migration_id":"\([0-9a-f]\{32\}\)".*/\1/p' "$T/send.out" | head -n 1)
"$SECMIG" tune "$ID" --bandwidth none --state-dir "$A" >"$T/tune.out" 2>&1 ||
	err "tune: $(cat "$T/tune.out")"
wait "$SPID"
RC=$?
[ "$RC" = 0 ] || { err "migration in flight across three reloads: send exit $RC, want 0"; tail -n 3 "$T/send.err"; }
expect_on B big "in flight across reloads"
grep -q '"event":"result".*"exit_code":0' "$T/recv.out" || err "recv reported no successful result"
kill -0 "$RECV_PID" 2>/dev/null || err "recv is not running after the reloads"

python3 "$SMG_SRC/test/engine/events_check.py" "$SMG_SRC/docs/events.md" "$T/recv.out" ||
	err "recv's JSON lines do not follow docs/events.md"

[ $fail = 0 ] && echo "service reload: all checks passed"
exit $fail
