#!/usr/bin/env bash
# Disks inside real migrations (secmig send/recv between two sim hosts, each
# with its own disk service): a real NBD client (qemu-io) writes through the
# service's export before the migration, during the bulk copy, during the
# iterative phase, and on the destination after the hand-over, in WAIO and
# DBT mode; afterwards the destination image equals the original plus every
# one of those writes, holes stay holes, and the manifest's disk root was
# checked. Failures: the receiver dying before READY, the sender dying
# mid-migration (the service merges WAIO's surrogate back: no write lost),
# and a disk damaged on the destination (exit 7).
command -v qemu-io >/dev/null && command -v qemu-img >/dev/null ||
	{ echo "qemu-utils not installed: skip"; exit 77; }
. "$SMG_SRC/test/engine/lib.sh"

MIB=1048576
disk_service() { # DIR [env...]: a disk service for a host's state dir, its
	# storage directory the host definitions' where there are any (as recv's)
	local dir=$1 defs=(); shift
	[ -f "$dir/defs" ] && defs=(--defs "$dir/defs")
	env "$@" "$SECMIG" --quiet disk serve --state-dir "$dir" ${defs[@]+"${defs[@]}"} \
		2>"$dir.disk.err" &
	PIDS+=($!)
	for i in $(seq 100); do [ -S "$dir/disk.sock" ] && return 0; sleep 0.05; done
	err "disk service on $dir did not start"
}
disk_service "$A"
disk_service "$B"

make_disk() { # NAME: 48 MiB, data in [0,8M) and [24M,32M), holes elsewhere, on A
	rm -f "$T/$1.src"
	truncate -s 48M "$T/$1.src"
	qemu-io -f raw "$T/$1.src" -c "write -P 0x61 0 8M" -c "write -P 0x62 24M 8M" >/dev/null
	cp --sparse=always "$T/$1.src" "$T/$1.orig"
	"$SECMIG" disk --state-dir "$A" import "$1" "$T/$1.src" >/dev/null || err "import $1"
}
export_of() { echo "nbd+unix:///$2?socket=$1/nbd.sock"; } # HOSTDIR NAME
qio() { # HOSTDIR NAME qemu-io-args...
	local h=$1 n=$2; shift 2
	qemu-io -f raw "$(export_of "$h" "$n")" "$@"
}
wait_for() { # FILE PATTERN: up to 30 s
	for i in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
	return 1
}
# send without --quiet: the fault stall's warning marks the iterative phase
send_logged() { # NAME [flags...]
	local name=$1; shift
	"$SECMIG" send --to "127.0.0.1:$PORT" --peer dst --on-no-converge extend --domain "$name" --json \
		--state-dir "$A" --name src --check-memory "$@" >"$T/send.out" 2>"$T/send.err"
	RC=$?
}

# The guest's writes, one per phase, then what the image must look like.
W_BEFORE=(-c "write -P 0xc0 2M 64k")
W_BULK=(-c "write -P 0xc1 1M 64k" -c "write -P 0xc3 25M 300" -c "discard 4M 1M")
W_ITER=(-c "write -P 0xc2 40M 12k" -c "write -P 0xc4 24M 4k")
W_AFTER=(-c "write -P 0xc5 44M 8k")
expect_image() { # ORIG OUT
	cp --sparse=always "$1" "$2"
	qemu-io -f raw "$2" "${W_BEFORE[@]}" "${W_BULK[@]/discard 4M 1M/write -z 4M 1M}" \
		"${W_ITER[@]}" "${W_AFTER[@]}" >/dev/null
}

for mode in waio dbt; do
	name=d$mode
	disk=$name.0
	make_disk "$disk"
	qio "$A" "$disk" "${W_BEFORE[@]}" >"$T/c0.log" 2>&1 || err "$mode: write before"
	vm "$name" 16M hotspot 1M "disk = $disk"
	RECV_LOG=--verbose start_recv
	(
		wait_for "$T/send.out" '"phase":"precopy"' || exit 1
		qio "$A" "$disk" "${W_BULK[@]}" || exit 2
		wait_for "$T/send.err" 'src_after_round0: stalling' || exit 3
		qio "$A" "$disk" "${W_ITER[@]}" || exit 4
		# The incoming export answers the NBD handshake already (a
		# destination QEMU started with -incoming opens its drive now).
		timeout 20 qemu-img info -f raw "$(export_of "$B" "$disk")" | grep -q "48 MiB" || exit 5
	) >"$T/client.log" 2>&1 &
	CPID=$!
	PIDS+=($CPID)
	SMG_FI=src_after_round0 SMG_FI_STALL_MS=2000 send_logged "$name" \
		--storage-mode "$mode" --bandwidth 8M --channels 2
	wait "$CPID"; crc=$?
	[ "$crc" = 0 ] || { err "$mode: client step $crc failed"; cat "$T/client.log"; }
	wait "$RECV_PID"; rrc=$?
	[ "$RC" = 0 ] && [ "$rrc" = 0 ] || { err "$mode: send $RC recv $rrc"; cat "$T/send.err" "$T/recv.err"; }
	[ "$(field outcome)" = migrated ] || err "$mode: outcome $(field outcome)"
	[ "$(field verified)" = true ] || err "$mode: not verified"
	# Memory and the disk share channel 0 without taking turns: the bulk
	# copy's disk frames go between its page frames (engine/disks.c, the
	# pump), so page frames follow the round's first disk frame.
	mix=$(sed -n 's/.*channel 0 round 0: \([0-9]*\) disk frames, \([0-9]*\) page frames after.*/\1 \2/p' "$T/recv.err")
	set -- $mix
	[ "${1:-0}" -gt 0 ] && [ "${2:-0}" -gt 0 ] ||
		{ err "$mode: round 0 did not interleave memory and disk frames: '$mix'"; grep "round 0" "$T/recv.err"; }
	echo "$mode: round 0 on channel 0: ${1:-0} disk frames, ${2:-0} page frames after the first"
	# After DONE the destination's service serves the VM's disk; the
	# source's copy is gone.
	qio "$B" "$disk" "${W_AFTER[@]}" >"$T/c3.log" 2>&1 || { err "$mode: write after"; cat "$T/c3.log"; }
	"$SECMIG" disk --state-dir "$B" list | grep -q "^$disk 50331648 idle" || err "$mode: $disk not idle on B"
	"$SECMIG" disk --state-dir "$A" list | grep -q "^$disk " && err "$mode: source still holds $disk"
	dst="$B/disks/$disk.img"
	expect_image "$T/$disk.orig" "$T/$disk.expect"
	cmp -s "$dst" "$T/$disk.expect" || err "$mode: destination differs from the guest's disk"
	# Sparse: the big hole [32M, 40M) is a hole on the destination.
	qemu-img map --output=json -f raw "$dst" | grep "\"start\": $((32 * MIB))," |
		grep "\"length\": $((8 * MIB))," | grep -q '"data": false' ||
		{ err "$mode: hole at 32M not kept"; qemu-img map --output=json -f raw "$dst"; }
	expect_on B "$name" "$mode disk migration"
done

# The VM's own disk I/O (synthetic workloads in the source's disk service,
# an MSR trace replay) while it migrates: the destination's disk root must
# equal the source's at pause.
for run in "dbt write-heavy" "waio trace:$SMG_SRC/bench/traces/msr_hot.csv" "waio mixed"; do
	set -- $run
	name=w$RANDOM
	make_disk "$name.0"
	vm "$name" 16M hotspot 1M "disk = $name.0"
	start_recv
	send "$name" --storage-mode "$1" --disk-workload "$2" --bandwidth 16M
	wait "$RECV_PID"; rrc=$?
	[ "$RC" = 0 ] && [ "$rrc" = 0 ] || { err "$run: send $RC recv $rrc"; cat "$T/send.err"; }
	[ "$(field verified)" = true ] || err "$run: disk not verified"
	expect_on B "$name" "$run"
done
# The disk root is part of the signed evidence (docs/audit.md): both
# hosts' records of the last migration carry the same one, and the two logs
# verify against each other.
roots() { "$SECMIG" audit show --json --state-dir "$1" | tail -n 1 |
	sed -n 's/.*"disk_roots":\[\("[0-9a-f]*"\)\].*/\1/p'; }
RA=$(roots "$A")
[ -n "$RA" ] && [ "$RA" = "$(roots "$B")" ] ||
	err "audit: disk roots differ or are missing: A '$RA' B '$(roots "$B")'"
"$SECMIG" audit verify --state-dir "$A" --peer-log "$B/audit/audit.log" >"$T/verify.out" 2>&1 ||
	{ err "audit verify across hosts"; cat "$T/verify.out"; }
grep -q "verified on both hosts" "$T/verify.out" || { err "no cross-check"; cat "$T/verify.out"; }

# Abort before COMMIT (the receiver crashes before READY): the source VM
# keeps running, WAIO's surrogate writes are back in its image, and the
# destination's service removed the incoming disk.
make_disk dab.0
vm dab 16M hotspot 1M "disk = dab.0"
start_recv SMG_FI=dst_before_ready
(wait_for "$T/send.out" '"phase":"precopy"' && qio "$A" dab.0 "${W_BULK[@]}") >"$T/client.log" 2>&1 &
CPID=$!
PIDS+=($CPID)
send dab --storage-mode waio --bandwidth 8M
wait "$CPID" || { err "abort: qemu-io failed"; cat "$T/client.log"; }
wait "$RECV_PID"
[ "$RC" != 0 ] || err "abort: send succeeded"
expect_on A dab "aborted disk migration"
qio "$A" dab.0 -c "read -P 0xc1 1M 64k" -c "read -P 0xc3 25M 300" -c "read -P 0 4M 1M" \
	-c "read -P 0x62 30M 4k" >"$T/ab.out" 2>&1 ||
	{ err "abort: client writes missing from the source disk"; cat "$T/ab.out"; }
ls -a "$A/disks" | grep -q surrogate && err "abort: surrogate left behind"
"$SECMIG" disk --state-dir "$B" list | grep -q "^dab.0 " && err "abort: incoming disk kept on B"

# The sender dies mid-migration (after round 0, WAIO): its disk service
# merges the surrogate back on its own and lets the guest's I/O go on.
make_disk dsk.0
vm dsk 16M hotspot 1M "disk = dsk.0"
start_recv
(wait_for "$T/send.out" '"phase":"precopy"' && qio "$A" dsk.0 "${W_BULK[@]}") >"$T/client.log" 2>&1 &
CPID=$!
PIDS+=($CPID)
SMG_FI=src_after_round0 send dsk --storage-mode waio --bandwidth 8M
wait "$CPID" || { err "sender crash: qemu-io failed"; cat "$T/client.log"; }
wait "$RECV_PID"
[ "$RC" = 70 ] || err "sender crash: send exit $RC, want 70 (the fault)"
for i in $(seq 100); do
	"$SECMIG" disk --state-dir "$A" list | grep -q "^dsk.0 .* idle" && break
	sleep 0.05
done
"$SECMIG" disk --state-dir "$A" list | grep -q "^dsk.0 .* idle" || err "sender crash: dsk.0 not idle again"
qio "$A" dsk.0 -c "read -P 0xc1 1M 64k" -c "read -P 0xc3 25M 300" -c "read -P 0 4M 1M" \
	-c "write -P 0xc7 3M 4k" -c "read -P 0xc7 3M 4k" >"$T/sk.out" 2>&1 ||
	{ err "sender crash: writes lost or I/O still held"; cat "$T/sk.out"; }
ls -a "$A/disks" | grep -q surrogate && err "sender crash: surrogate left behind"

# In doubt: the destination resumed the VM but DONE never came. The source's
# disk stays handed over (I/O held) until `secmig resolve` settles the VM
# and, with it, the disk: dropped here, served on B with the guest's writes.
make_disk ddb.0
vm ddb 16M hotspot 1M "disk = ddb.0"
start_recv SMG_FI=dst_no_done
(wait_for "$T/send.out" '"phase":"precopy"' && qio "$A" ddb.0 "${W_BULK[@]}") >"$T/client.log" 2>&1 &
CPID=$!
PIDS+=($CPID)
send ddb --bandwidth 8M
wait "$CPID" || { err "in doubt: qemu-io failed"; cat "$T/client.log"; }
wait "$RECV_PID"
[ "$RC" = 9 ] || { err "in doubt: send exit $RC, want 9"; cat "$T/send.err"; }
"$SECMIG" disk --state-dir "$A" list | grep -q "^ddb.0 .* handed-over" ||
	err "in doubt: the source's disk is not held handed-over"
start_recv
"$SECMIG" --quiet resolve --domain ddb --to "127.0.0.1:$PORT" --json --state-dir "$A" \
	--name src >"$T/resolve.out" 2>"$T/resolve.err" || { err "resolve failed"; cat "$T/resolve.err"; }
wait "$RECV_PID"
grep -q running_on_destination "$T/resolve.out" || err "resolve: $(cat "$T/resolve.out")"
"$SECMIG" disk --state-dir "$A" list | grep -q "^ddb.0 " && err "in doubt: source disk kept after resolve"
qio "$B" ddb.0 -c "read -P 0xc1 1M 64k" -c "read -P 0xc3 25M 300" -c "read -P 0 4M 1M" \
	>"$T/db.out" 2>&1 || { err "in doubt: the guest's writes are not on B"; cat "$T/db.out"; }
expect_on B ddb "in doubt, destination ran it"

# In doubt the other way: the receiver died after recording COMMIT, before
# resuming. Its disk service kept the disk (committed, I/O held); resolve
# resumes the VM on B and releases the disk's I/O first.
make_disk ddc.0
vm ddc 16M hotspot 1M "disk = ddc.0"
start_recv SMG_FI=dst_after_commit
send ddc --bandwidth 16M
wait "$RECV_PID"
[ "$RC" = 9 ] || { err "receiver died after COMMIT: send exit $RC, want 9"; cat "$T/send.err"; }
"$SECMIG" disk --state-dir "$B" list | grep -q "^ddc.0 .* committed" ||
	err "receiver died after COMMIT: disk not kept committed on B"
start_recv
"$SECMIG" --quiet resolve --domain ddc --to "127.0.0.1:$PORT" --json --state-dir "$A" \
	--name src >"$T/resolve.out" 2>"$T/resolve.err" || { err "resolve failed"; cat "$T/resolve.err"; }
wait "$RECV_PID"
"$SECMIG" disk --state-dir "$B" list | grep -q "^ddc.0 .* idle" || err "resolve: ddc.0 not released on B"
timeout 20 qemu-io -f raw "$(export_of "$B" ddc.0)" -c "read -P 0x62 30M 4k" >/dev/null ||
	err "resolve: ddc.0 not readable on B"
"$SECMIG" disk --state-dir "$A" list | grep -q "^ddc.0 " && err "resolve: source disk kept"
expect_on B ddc "receiver died after COMMIT"

# A disk block damaged on the destination after it arrived (the disk
# service's fault point): the fresh recomputation (--check-memory)
# disagrees with the manifest's disk root, the destination refuses READY,
# the source keeps running (exit 7).
mkdir -p "$T/bad"
disk_service "$T/bad" SMG_FI=dst_bad_disk
make_disk dbad.0
vm dbad 16M hotspot 1M "disk = dbad.0"
rm -f "$T/recv.out"
"$SECMIG" --quiet recv --listen 127.0.0.1:0 --once --json --check-memory \
	--state-dir "$B" --disk-socket "$T/bad" --name dst --insecure-software-mode \
	--defs "$B/defs" >"$T/recv.out" 2>"$T/recv.err" &
RECV_PID=$!
PIDS+=($RECV_PID)
wait_for "$T/recv.out" '"event":"listening"' || err "receiver did not start"
PORT=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/recv.out")
send dbad --bandwidth 32M
wait "$RECV_PID"
[ "$RC" = 7 ] || { err "damaged disk: send exit $RC, want 7"; cat "$T/send.err"; }
grep -q "disk 0" "$T/recv.err" || err "damaged disk: the receiver did not name the disk"
expect_on A dbad "damaged disk"
# The copy goes to quarantine (docs/engine.md): its disk stays in the disk
# service, held and never resumed, and the quarantine's disks file names it.
"$SECMIG" disk --state-dir "$T/bad" list | grep -q "^dbad.0 " ||
	err "damaged disk: the incoming disk was not kept for the quarantine"
grep -qs "^dbad.0 " "$B"/quarantine/*/disks ||
	err "damaged disk: the quarantine does not name dbad.0"

[ $fail = 0 ] && echo "storage engine disk: all checks passed"
exit $fail
