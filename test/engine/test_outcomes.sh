#!/usr/bin/env bash
# Honest outcomes: each refusal of the destination reaches the source with
# its reason and the same exit code on both sides (before, almost all of
# them read "send: network: success (exit 6)"), naming the host that failed;
# a copy that fails verification is kept in quarantine, not deleted; recv
# flushes each result line.
. "$SMG_SRC/test/engine/lib.sh"
check() { # KEY VALUE WHAT
	[ "$(field "$1")" = "$2" ] || err "$3: $1 is '$(field "$1")', want '$2'"
}
recv_last() { tail -n 1 "$T/recv.out"; }

# ---- the name exists on the destination: exit 15 on both sides ---------
vm taken 8M idle 0
"$SECMIG" sim --state-dir "$B" create "$T/taken.cfg" >/dev/null || err "create taken on B"
start_recv
send taken
wait "$RECV_PID"
RRC=$?
[ "$RC" = 15 ] && [ "$RRC" = 15 ] || err "name exists: send $RC recv $RRC, want 15 15"
check reason exists "name exists"
check failed_host destination "name exists"
result | grep -q "\"detail\":\"destination 'dst' refused the plan: domain 'taken': a domain of that name already exists on this host\"" ||
	err "name exists: $(result)"
grep -q "success" "$T/send.err" && err "name exists: 'success' in $(cat "$T/send.err")"
recv_last | grep -q '"failed_host":"destination"' || err "recv: $(recv_last)"
echo "name exists: send exit $RC, recv exit $RRC: $(field detail)"
"$SECMIG" sim --state-dir "$B" destroy taken >/dev/null
expect_on A taken "name exists"

# ---- the destination's disk is full: exit 14 ----------------------------
# The disks live in each host's disk service: A's holds diskfull.0 (6 MiB
# of random bytes); B's has its storage directory on a 1 MiB tmpfs (mounted
# here, unmounted at the end).
head -c 6M /dev/urandom >"$T/full-disk.img"
mkdir -p "$T/full" "$T/fullsvc"
mount -t tmpfs -o size=1m tmpfs "$T/full" || err "disk full: cannot mount a tmpfs"
sed "s|^storage .*|storage $T/full|" "$B/defs" >"$T/fulldefs"
chmod 600 "$T/fulldefs"
"$SECMIG" --quiet disk serve --state-dir "$A" & PIDS+=($!)
"$SECMIG" --quiet disk serve --state-dir "$T/fullsvc" --defs "$T/fulldefs" & PIDS+=($!)
for i in $(seq 100); do
	[ -S "$A/disk.sock" ] && [ -S "$T/fullsvc/disk.sock" ] && break
	sleep 0.05
done
"$SECMIG" disk --state-dir "$A" import diskfull.0 "$T/full-disk.img" >/dev/null ||
	err "disk full: import"
vm diskfull 8M idle 0 "disk = diskfull.0"
"$SECMIG" --quiet recv --listen 127.0.0.1:0 --once --json --state-dir "$B" --name dst \
	--insecure-software-mode --defs "$T/fulldefs" --disk-socket "$T/fullsvc/disk.sock" \
	>"$T/recv.out" 2>"$T/recv.err" &
RECV_PID=$!
PIDS+=($RECV_PID)
for i in $(seq 200); do
	PORT=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/recv.out")
	[ -n "$PORT" ] && break
	sleep 0.05
done
send diskfull
wait "$RECV_PID"
RRC=$?
[ "$RC" = 14 ] && [ "$RRC" = 14 ] || err "disk full: send $RC recv $RRC, want 14 14"
check reason disk_full "disk full"
check failed_host destination "disk full"
result | grep -q "destination 'dst' aborted: no space left for the incoming disk images" ||
	err "disk full: $(result)"
echo "disk full: send exit $RC, recv exit $RRC: $(field detail)"
for i in $(seq 50); do [ "$(state_on "$B" diskfull)" = absent ] && break; sleep 0.05; done
expect_on A diskfull "disk full"
umount "$T/full" 2>/dev/null

# ---- the destination has no such backend: exit 12 -----------------------
if "$SECMIG" version | grep -q '^backends:.*xen'; then
	vm nobackend 8M idle 0
	"$SECMIG" --quiet recv --listen 127.0.0.1:0 --once --json --state-dir "$B" --name dst \
		--insecure-software-mode --defs "$B/defs" --backend xen >"$T/recv.out" 2>"$T/recv.err" &
	RECV_PID=$!
	PIDS+=($RECV_PID)
	for i in $(seq 200); do
		PORT=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/recv.out")
		[ -n "$PORT" ] && break
		sleep 0.05
	done
	send nobackend
	wait "$RECV_PID"
	RRC=$?
	[ "$RC" = 12 ] && [ "$RRC" = 12 ] || err "no backend: send $RC recv $RRC, want 12 12"
	check reason no_backend "no backend"
	result | grep -q "backend 'xen'" || err "no backend: $(result)"
	echo "no backend: send exit $RC, recv exit $RRC: $(field detail)"
	expect_on A nobackend "no backend"
fi

# ---- a copy that fails verification goes to quarantine: exit 7 ------------
vm bad 8M hotspot 2M
start_recv SMG_FI=dst_bad_root
send bad
wait "$RECV_PID"
RRC=$?
[ "$RC" = 7 ] && [ "$RRC" = 7 ] || err "bad root: send $RC recv $RRC, want 7 7"
check reason integrity "bad root"
ID=$(field migration_id)
Q=$B/quarantine/$ID
[ -d "$Q" ] || err "bad root: no quarantine directory $Q"
grep -q "^failed memory root differs from the source's manifest" "$Q/reason" ||
	err "bad root: reason file: $(cat "$Q/reason" 2>&1)"
grep -q "^source src " "$Q/reason" || err "bad root: the reason names no source"
[ "$(stat -c %s "$Q/memory")" = $((8 * 1024 * 1024)) ] || err "bad root: no memory image"
grep -q "^name = bad" "$Q/config" || err "bad root: no config"
[ "$(stat -c %a "$Q")" = 700 ] || err "bad root: quarantine is not 0700"
head -c 11 "$B/outcomes/$ID" | grep -q quarantine || err "bad root: record $(cat "$B/outcomes/$ID")"
echo "bad root: send exit $RC, recv exit $RRC, quarantine: $(ls "$Q" | tr '\n' ' ')"
for i in $(seq 50); do [ "$(state_on "$B" bad)" = absent ] && break; sleep 0.05; done
expect_on A bad "quarantined"

# ---- recv flushes each result line (a service writing to a file) ---------
vm flushed 8M idle 0
"$SECMIG" --quiet recv --listen 127.0.0.1:0 --state-dir "$B" --name dst \
	--insecure-software-mode --defs "$B/defs" >"$T/svc.out" \
	2>"$T/svc.err" &
SVC=$!
PIDS+=($SVC)
for i in $(seq 200); do
	PORT=$(sed -n 's/.* port \([0-9]*\) .*/\1/p' "$T/svc.out")
	[ -n "$PORT" ] && break
	sleep 0.05
done
grep -q "as 'dst'" "$T/svc.out" || err "recv does not say which name it claims: $(cat "$T/svc.out")"
send flushed
[ "$RC" = 0 ] || err "flushed: send exit $RC"
for i in $(seq 100); do grep -q "^recv: migrated flushed" "$T/svc.out" && break; sleep 0.05; done
grep -q "^recv: migrated flushed from 'src'" "$T/svc.out" ||
	err "recv's result line is not in its output while it runs: $(cat "$T/svc.out")"
kill -0 "$SVC" || err "the service died"
expect_on B flushed "service"

[ $fail = 0 ] && echo "engine outcomes: all checks passed"
exit $fail
