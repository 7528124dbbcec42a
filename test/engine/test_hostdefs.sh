#!/usr/bin/env bash
# The destination owns its host (issue 13), end to end with secmig send/recv:
#  - recv refuses to start without a policy unless --insecure-software-mode,
#    and without host definitions; the result JSON says how it authenticated;
#  - peers, policy and definitions files someone else may write are refused;
#  - a received config is never stored as trusted local config: after
#    A -> B the sim host on B keeps B's own config, so B -> E sends the disk
#    B received, not a disk of B's under the name A's config used (once E
#    got a disk that began with a private file of B's);
#  - an incoming image never replaces a file in the storage directory nor a
#    disk of the host's disk service;
#  - a real sender whose VM brings a MAC outside B's definition gets exit 5
#    on both sides, and nothing is left on B.
. "$SMG_SRC/test/engine/lib.sh"

# -- startup refusals --------------------------------------------------------
"$SECMIG" --quiet recv --listen 127.0.0.1:0 --once --state-dir "$B" --name dst \
	--defs "$B/defs" >"$T/r.out" 2>"$T/r.err"
[ $? = 11 ] || err "recv without --policy started"
grep -q "insecure-software-mode" "$T/r.err" || err "no hint at the opt-in: $(cat "$T/r.err")"
"$SECMIG" --quiet recv --listen 127.0.0.1:0 --once --state-dir "$B" --name dst \
	--insecure-software-mode >"$T/r.out" 2>"$T/r.err"
[ $? = 11 ] || err "recv without --defs started"
chmod 666 "$B/peers"
"$SECMIG" --quiet recv --listen 127.0.0.1:0 --once --state-dir "$B" --name dst \
	--insecure-software-mode --defs "$B/defs" >"$T/r.out" 2>"$T/r.err"
[ $? = 11 ] || err "world-writable peers file accepted"
chmod 600 "$B/peers"
chmod 620 "$B/defs"
"$SECMIG" --quiet recv --listen 127.0.0.1:0 --once --state-dir "$B" --name dst \
	--insecure-software-mode --defs "$B/defs" >"$T/r.out" 2>"$T/r.err"
[ $? = 11 ] || err "group-writable definitions accepted"
grep -q "writable" "$T/r.err" || err "no reason: $(cat "$T/r.err")"
chmod 600 "$B/defs"
printf 'host dst\nmode software\n' >"$T/policy" && chmod 646 "$T/policy"
"$SECMIG" --quiet recv --listen 127.0.0.1:0 --once --state-dir "$B" --name dst \
	--policy "$T/policy" --defs "$B/defs" >"$T/r.out" 2>"$T/r.err"
[ $? = 11 ] || err "world-writable policy accepted"
"$SECMIG" config check --defs "$B/defs" >/dev/null || err "config check --defs"

# -- a MAC this host never offered: exit 5 both sides, nothing on B ---------
vm rogue 16M idle 0 "nic = mac=02:00:00:00:00:01,ipv4=10.9.0.1"
start_recv
send rogue
wait "$RECV_PID"; rrc=$?
[ "$RC" = 5 ] && [ "$rrc" = 5 ] || err "foreign MAC: send $RC recv $rrc, want 5 and 5"
grep -q "MAC 02:00:00:00:00:01 is not one this host lets the VM bring" "$T/recv.err" ||
	err "no reason in the receiver's log"
[ "$(state_on "$B" rogue)" = absent ] || err "foreign MAC: a domain on B"
[ "$(state_on "$A" rogue)" = running ] || err "foreign MAC: the VM stopped on A"
grep -q '"auth":"software"' "$T/send.out" || err "result has no auth: $(result)"

# -- A -> B -> E: B's own config travels on ---------------------------------
# Disks live in each host's disk service (docs/storage.md), its storage
# directory the definitions' (disk serve --defs). A's VM calls its disk
# secret.0, the name of a private disk of B's: B must store the incoming
# disk under its own name (chain.0) and its own config, so that B -> E
# carries the disk B received, never B's secret.0.
disk_serve() { # DIR
	"$SECMIG" --quiet disk serve --state-dir "$1" --defs "$1/defs" 2>"$1.disk.err" &
	PIDS+=($!)
	for _ in $(seq 100); do [ -S "$1/disk.sock" ] && return 0; sleep 0.05; done
	err "disk service on $1 did not start"
}
E=$T/e
mkdir -p "$E"
"$SECMIG" keygen "$E/host.key" >/dev/null
echo "b $(cat "$B/host.key.pub")" >"$E/peers"
echo "e $(cat "$E/host.key.pub")" >>"$B/peers"
chmod 600 "$E/peers" "$B/peers"
write_defs "$E"
"$SECMIG" --quiet sim host --state-dir "$E" & PIDS+=($!)
for _ in $(seq 100); do [ -S "$E/sim.sock" ] && break; sleep 0.05; done
disk_serve "$A"
disk_serve "$B"
disk_serve "$E"
truncate -s 4M "$T/chain.img" "$T/secret.img"
printf 'the VM disk, as A had it' | dd of="$T/chain.img" conv=notrunc status=none
printf 'PRIVATE KEY OF HOST B' | dd of="$T/secret.img" conv=notrunc status=none
cp "$T/chain.img" "$T/chain.orig"
"$SECMIG" disk --state-dir "$A" import secret.0 "$T/chain.img" >/dev/null || err "import on A"
"$SECMIG" disk --state-dir "$B" import secret.0 "$T/secret.img" >/dev/null || err "import on B"
vm chain 16M idle 0 "disk = secret.0"
start_recv
send chain
wait "$RECV_PID"
[ "$RC" = 0 ] || err "A -> B: exit $RC"
cmp -s "$B/disks/chain.0.img" "$T/chain.orig" || err "A -> B: B's disk chain.0 differs"
cmp -s "$B/disks/secret.0.img" "$T/secret.img" || err "A -> B: B's own secret.0 was touched"
"$SECMIG" --quiet recv --listen 127.0.0.1:0 --once --json --state-dir "$E" --name e \
	--insecure-software-mode --defs "$E/defs" >"$T/recv.out" 2>"$T/recv.err" &
RECV_PID=$!
PIDS+=($RECV_PID)
for _ in $(seq 200); do
	PORT=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$T/recv.out" 2>/dev/null)
	[ -n "$PORT" ] && break
	sleep 0.05
done
"$SECMIG" --quiet send --to "127.0.0.1:$PORT" --peer e --domain chain --json \
	--state-dir "$B" --name b >"$T/send.out" 2>"$T/send.err"
RC=$?
wait "$RECV_PID"
[ "$RC" = 0 ] || err "B -> E: exit $RC ($(tail -2 "$T/send.err"))"
cmp -s "$E/disks/chain.0.img" "$T/chain.orig" || err "B -> E: E's disk is not the image B received"
grep -q "PRIVATE" "$E/disks/chain.0.img" 2>/dev/null && err "B -> E: E got B's private disk"
[ -e "$E/disks/secret.0.img" ] && err "B -> E: E got a disk named by B's config of A's"
cmp -s "$B/disks/secret.0.img" "$T/secret.img" || err "B -> E: B's own secret.0 was touched"

# -- an incoming image never replaces a file of this host's ------------------
# Not a disk of B's service (that name is refused as taken), a file put in
# the storage directory behind the service's back: refused at PLAN time
# (RECV), never renamed over.
"$SECMIG" disk --state-dir "$A" import clob.0 "$T/chain.orig" >/dev/null || err "import clob.0"
vm clobber 16M idle 0 "disk = clob.0"
echo "another VM's disk" >"$B/disks/clobber.0.img"
start_recv
send clobber
wait "$RECV_PID"; rrc=$?
[ "$RC" != 0 ] || err "an existing image was overwritten"
grep -q "another VM's disk" "$B/disks/clobber.0.img" || err "the existing image was touched"
[ "$(state_on "$B" clobber)" = absent ] || err "clobber: a domain on B"
[ "$(state_on "$A" clobber)" = running ] || err "clobber: the VM stopped on A"
ls -a "$B/disks" | grep -q '\.clobber' && err "clobber: an incoming file was left on B"
# ... and a disk B's service holds under that name
"$SECMIG" disk --state-dir "$B" import clobber2.0 "$T/secret.img" >/dev/null || err "import clobber2.0"
"$SECMIG" disk --state-dir "$A" import clob2.0 "$T/chain.orig" >/dev/null || err "import clob2.0"
vm clobber2 16M idle 0 "disk = clob2.0"
start_recv
send clobber2
wait "$RECV_PID"
[ "$RC" != 0 ] || err "a disk of B's service was replaced"
cmp -s "$B/disks/clobber2.0.img" "$T/secret.img" || err "B's disk clobber2.0 was touched"
[ "$(state_on "$A" clobber2)" = running ] || err "clobber2: the VM stopped on A"

[ $fail = 0 ] && echo "hostdefs: all checks passed"
exit $fail
