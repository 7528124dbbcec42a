#!/usr/bin/env bash
# The kernel's NBD client (nbd-client + the nbd module, as a Xen dom0 would
# attach a guest disk for blkback) on the disk service's export while the
# disk migrates: O_DIRECT writes before, during the bulk copy and during the
# iterative phase go through /dev/nbdX; after the hand-over the device is
# attached to the destination's export and written again; the destination
# image must then be byte-identical to the original plus every write.
# Skips (77) only when the kernel has no NBD driver at all.
command -v nbd-client >/dev/null && command -v qemu-io >/dev/null ||
	{ echo "nbd-client or qemu-utils not installed: skip"; exit 77; }
modprobe nbd nbds_max=16 2>/dev/null
if [ ! -e /sys/module/nbd ] && [ ! -b /dev/nbd0 ]; then
	why=$( (zcat /proc/config.gz 2>/dev/null || cat "/boot/config-$(uname -r)" 2>/dev/null) |
		grep 'BLK_DEV_NBD')
	echo "kernel $(uname -r) has no NBD driver (${why:-no kernel config found}; modprobe nbd failed): skip"
	exit 77
fi
. "$SMG_SRC/test/engine/lib.sh"

# A free device, held with a lock against other tests on this machine.
DEV=
lockdir=/run/lock
[ -d "$lockdir" ] || lockdir=/tmp
for n in $(seq 0 15); do
	[ -b "/dev/nbd$n" ] || continue
	exec 9>"$lockdir/secmig-nbd$n.lock" || continue
	flock -n 9 || continue
	[ -e "/sys/block/nbd$n/pid" ] && { flock -u 9; continue; }
	DEV=/dev/nbd$n
	break
done
[ -n "$DEV" ] || { echo "no free /dev/nbdX"; exit 1; }
detach() { nbd-client -d "$DEV" >/dev/null 2>&1; }
trap 'detach; cleanup' EXIT

for h in "$A" "$B"; do
	"$SECMIG" --quiet disk serve --state-dir "$h" --defs "$h/defs" 2>"$h.disk.err" &
	PIDS+=($!)
done
for i in $(seq 100); do [ -S "$A/disk.sock" ] && [ -S "$B/disk.sock" ] && break; sleep 0.05; done

truncate -s 48M "$T/k.src"
qemu-io -f raw "$T/k.src" -c "write -P 0x61 0 8M" -c "write -P 0x62 24M 8M" >/dev/null
cp --sparse=always "$T/k.src" "$T/k.expect"
"$SECMIG" disk --state-dir "$A" import kv.0 "$T/k.src" >/dev/null || err "import"

put() { # PATTERN-BYTE OFFSET-KiB: 64 KiB straight to the device, and to the expectation
	head -c 65536 /dev/zero | tr '\0' "\\$(printf '%03o' "$1")" >"$T/blk"
	dd if="$T/blk" of="$DEV" bs=64k seek=$(($2 / 64)) count=1 oflag=direct,sync status=none ||
		{ err "write $1 at $2 KiB through $DEV"; return 1; }
	dd if="$T/blk" of="$T/k.expect" bs=64k seek=$(($2 / 64)) count=1 conv=notrunc status=none
}
attach() { # HOSTDIR
	nbd-client -N kv.0 -u "$1/nbd.sock" "$DEV" -b 4096 >/dev/null 2>&1 ||
		{ err "nbd-client to $1"; return 1; }
}

attach "$A"
put 193 2048 # before
vm kv 16M hotspot 1M "disk = kv.0"
start_recv
(
	for i in $(seq 600); do grep -q '"phase":"precopy"' "$T/send.out" 2>/dev/null && break; sleep 0.05; done
	put 194 1024                     # bulk copy
	for i in $(seq 600); do grep -q 'stalling' "$T/send.err" 2>/dev/null && break; sleep 0.05; done
	put 195 40960                    # iterative phase
) &
CPID=$!
PIDS+=($CPID)
SMG_FI=src_after_round0 SMG_FI_STALL_MS=2000 "$SECMIG" send --to "127.0.0.1:$PORT" \
	--peer dst --domain kv --json --state-dir "$A" --name src --bandwidth 8M \
	>"$T/send.out" 2>"$T/send.err"
RC=$?
wait "$CPID"
wait "$RECV_PID"
[ "$RC" = 0 ] || { err "send exit $RC"; cat "$T/send.err"; }
detach
attach "$B"
put 196 45056 # on the destination, after the hand-over
detach
cmp -s "$B/disks/kv.0.img" "$T/k.expect" || err "destination differs from what the kernel client wrote"
expect_on B kv "kernel NBD client"

[ $fail = 0 ] && echo "kernel NBD client: all checks passed"
exit $fail
