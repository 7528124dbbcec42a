#!/usr/bin/env bash
# Disks inside a real migration (secmig send/recv between two sim hosts):
# a real NBD client (qemu-io) writes and reads through the source's export
# while the disk migrates, in WAIO and in DBT mode; afterwards the
# destination image equals the original plus every client write, holes stay
# holes, and the manifest's disk root was checked. A WAIO migration that
# fails before COMMIT leaves every client write in the source image.
command -v qemu-io >/dev/null && command -v qemu-img >/dev/null ||
	{ echo "qemu-utils not installed: skip"; exit 77; }
. "$SMG_SRC/test/engine/lib.sh"

MIB=1048576
make_disk() { # PATH: 48 MiB, data in [0,8M) and [24M,32M), holes elsewhere
	rm -f "$1"
	truncate -s 48M "$1"
	qemu-io -f raw "$1" -c "write -P 0x61 0 8M" -c "write -P 0x62 24M 8M" >/dev/null
}

# The client: wait until the migration is in pre-copy (disk tracking is on
# from then), then write and read through the export.
client() { # SOCK LOG
	for i in $(seq 500); do
		[ -S "$1" ] && grep -q '"phase":"precopy"' "$T/send.out" 2>/dev/null && break
		sleep 0.01
	done
	[ -S "$1" ] || { echo "no export at $1" >"$2"; return 1; }
	qemu-io -f raw "nbd+unix:///secmig?socket=$1" \
		-c "write -P 0xc1 1M 64k" -c "write -P 0xc2 40M 12k" \
		-c "write -P 0xc3 25M 300" -c "read -P 0xc1 1M 64k" \
		-c "read -P 0x62 30M 4k" -c "discard 4M 1M" -c "read -P 0 4M 1M" \
		>"$2" 2>&1
}

# What the guest wrote, applied to a copy of the original: the expected image.
expect_image() { # ORIG OUT
	cp --sparse=always "$1" "$2"
	qemu-io -f raw "$2" -c "write -P 0xc1 1M 64k" -c "write -P 0xc2 40M 12k" \
		-c "write -P 0xc3 25M 300" -c "write -z 4M 1M" >/dev/null
}

for mode in waio dbt; do
	make_disk "$T/disk-$mode.img"
	cp --sparse=always "$T/disk-$mode.img" "$T/orig-$mode.img"
	vm "d$mode" 16M hotspot 1M "disk = $T/disk-$mode.img"
	start_recv
	client "$T/d$mode.0.nbd" "$T/client-$mode.log" &
	CPID=$!
	PIDS+=($CPID)
	send "d$mode" --storage-mode "$mode" --nbd-dir "$T" --bandwidth 8M --channels 2
	wait "$CPID" || { err "$mode: qemu-io through the export failed"; cat "$T/client-$mode.log"; }
	wait "$RECV_PID"; rrc=$?
	[ "$RC" = 0 ] && [ "$rrc" = 0 ] || { err "$mode: send $RC recv $rrc"; cat "$T/send.err" "$T/recv.err"; }
	[ "$(field outcome)" = migrated ] || err "$mode: outcome $(field outcome)"
	[ "$(field verified)" = true ] || err "$mode: not verified"
	dst="$B/d$mode.0.img"
	[ -f "$dst" ] || err "$mode: no destination image $dst"
	expect_image "$T/orig-$mode.img" "$T/expect-$mode.img"
	cmp -s "$dst" "$T/expect-$mode.img" || err "$mode: destination differs from the guest's disk"
	# Sparse: the big hole [32M, 40M) is a hole on the destination.
	qemu-img map --output=json -f raw "$dst" | grep "\"start\": $((32 * MIB))," |
		grep "\"length\": $((8 * MIB))," | grep -q '"data": false' ||
		{ err "$mode: hole at 32M not kept"; qemu-img map --output=json -f raw "$dst"; }
	expect_on B "d$mode" "$mode disk migration"
done

# The VM's own disk I/O (synthetic workloads, an MSR trace replay) while it
# migrates: the destination's disk root must equal the source's at pause.
for run in "dbt write-heavy" "waio trace:$SMG_SRC/bench/traces/msr_hot.csv" "waio mixed"; do
	set -- $run
	name=w$RANDOM
	make_disk "$T/$name.img"
	vm "$name" 16M hotspot 1M "disk = $T/$name.img"
	start_recv
	send "$name" --storage-mode "$1" --disk-workload "$2" --bandwidth 16M
	wait "$RECV_PID"; rrc=$?
	[ "$RC" = 0 ] && [ "$rrc" = 0 ] || { err "$run: send $RC recv $rrc"; cat "$T/send.err"; }
	[ "$(field verified)" = true ] || err "$run: disk not verified"
	expect_on B "$name" "$run"
done

# Abort before COMMIT (the receiver crashes before READY): the source VM
# keeps running and WAIO's surrogate writes are back in its image.
make_disk "$T/disk-ab.img"
vm dab 16M hotspot 1M "disk = $T/disk-ab.img"
start_recv SMG_FI=dst_before_ready
client "$T/dab.0.nbd" "$T/client-ab.log" &
CPID=$!
PIDS+=($CPID)
send dab --storage-mode waio --nbd-dir "$T" --bandwidth 8M
wait "$CPID" || { err "abort: qemu-io failed"; cat "$T/client-ab.log"; }
wait "$RECV_PID"
[ "$RC" != 0 ] || err "abort: send succeeded"
expect_on A dab "aborted disk migration"
qemu-io -f raw "$T/disk-ab.img" -c "read -P 0xc1 1M 64k" -c "read -P 0xc2 40M 12k" \
	-c "read -P 0xc3 25M 300" -c "read -P 0 4M 1M" -c "read -P 0x62 30M 4k" >"$T/ab.out" 2>&1 ||
	{ err "abort: client writes missing from the source image"; cat "$T/ab.out"; }
ls "$T"/.secmig-surrogate-* >/dev/null 2>&1 && err "abort: surrogate left behind"

# A disk block damaged on the destination after it arrived: the fresh
# recomputation (--check-memory) disagrees with the manifest's disk root,
# the destination refuses READY, the source keeps running (exit 7).
make_disk "$T/disk-bad.img"
vm dbad 16M hotspot 1M "disk = $T/disk-bad.img"
start_recv SMG_FI=dst_bad_disk
send dbad --bandwidth 32M
wait "$RECV_PID"
[ "$RC" = 7 ] || { err "damaged disk: send exit $RC, want 7"; cat "$T/send.err"; }
grep -q "disk 0" "$T/recv.err" || err "damaged disk: the receiver did not name the disk"
expect_on A dbad "damaged disk"
[ -e "$B/dbad.0.img" ] && err "damaged disk: the incoming image was kept"

[ $fail = 0 ] && echo "storage engine disk: all checks passed"
exit $fail
