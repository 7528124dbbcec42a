#!/usr/bin/env bash
# Issue 14: a real Linux guest (Debian kernel, busybox initramfs, 256 MiB,
# one disk, one NIC, a vTPM) under QEMU/TCG in a network namespace,
# migrated by `secmig send --backend qemu` to a second QEMU in another
# namespace on the same switch, while a peer pings it every 10 ms and keeps
# one TCP connection open. Both sides run --check-memory: the source
# re-hashes the paused guest's memory and the destination the memory it
# wrote, so every page is compared after the move. Checks: the guest's tick
# and uptime continue on the destination; its memory, disk, PCR and sealed
# secret self-checks stay clean there; the TCP connection is still open;
# exactly one QEMU runs (the destination's); the source's tap, RAM file and
# vTPM state are gone.
set -u
. "$SMG_SRC/test/net/netbed.sh"
. "$SMG_SRC/test/qemu/qemubed.sh"
fail=0
bad() { echo "FAIL: $*"; fail=1; }
qb_init
qb_define src
qb_define dst
qb_keys || { echo "FAIL: keys"; exit 1; }
qb_start src || { echo "FAIL: start: $(cat "$T/src/qemu/$QB_NAME.log")"; exit 1; }
qb_wait_tick src 4 || { echo "FAIL: guest did not tick:"; cat "$T/src/serial.log"; exit 1; }
grep -a -q GUEST-SEALED "$T/src/serial.log" || bad "guest could not seal its secret"
echo "guest up on src: $(qb_ticks src | tail -1)"

# The peer: ping every 10 ms, one TCP connection.
nb_bg sw "$T/ping.out" ping -i 0.01 -n "$NB_VM4"
PING_PID=$NB_PID
nb_bg sw "$T/tcp.out" python3 "$SMG_SRC/test/qemu/tcp_probe.py" "$NB_VM4" 7000 "$T/tcp.stop"
TCP_PID=$NB_PID
for _ in $(seq 100); do grep -q '"echoed": [1-9]' "$T/tcp.out" 2>/dev/null && break; sleep 0.2; done
grep -q '"echoed": [1-9]' "$T/tcp.out" || bad "TCP connection to the guest did not come up"
SRC_PID=$(qb_status src | cut -d' ' -f2)

qb_recv dst -- --check-memory || exit 1
qb_send src dst -- --check-memory
echo "send exit $QB_RC"
grep '"event":"result"' "$T/send.out"
[ "$QB_RC" = 0 ] || { bad "send exited $QB_RC"; tail -30 "$T/send.err"; }
wait "$QB_RECV_PID" 2>/dev/null
grep -q '"verified":true' "$T/send.out" || bad "manifest not verified"
last_src=$(qb_last_tick src)
last_up=$(qb_ticks src | tail -1 | sed -n 's/.* up=\([0-9.]*\).*/\1/p')
qb_wait_tick dst $((last_src + 6)) || bad "no ticks on the destination"

# Continuity: the next tick, a later uptime, no reboot, clean self-checks.
first=$(qb_ticks dst | head -1)
echo "last on src: $(qb_ticks src | tail -1)"
echo "first on dst: $first"
[ "$(echo "$first" | awk '{print $2}')" = $((last_src + 1)) ] || bad "tick does not continue"
first_up=$(echo "$first" | sed -n 's/.* up=\([0-9.]*\).*/\1/p')
awk -v a="$last_up" -v b="$first_up" 'BEGIN { exit !(b > a) }' || bad "uptime went back"
grep -a -q GUEST-UP "$T/dst/serial.log" && bad "the guest rebooted on the destination"
qb_ticks dst | grep -v 'mem=ok disk=ok pcr=ok seal=ok' && bad "self-check failed on the destination"
grep -a CORRUPT "$T/src/serial.log" "$T/dst/serial.log" && bad "the guest saw corruption"
qb_ticks dst | awk '{print $2 % 4}' | grep -q '^0$' || bad "no unseal on the destination yet"
echo "PCR 16 on dst: $(qb_ticks dst | tail -1 | sed 's/.*pcr16=//')"

# The network: the TCP connection survived, the peer still reaches it.
for _ in $(seq 50); do
	e=$(tail -1 "$T/tcp.out" | sed -n 's/.*"echoed": \([0-9]*\).*/\1/p')
	[ -n "$e" ] && [ "$e" -gt 0 ] && break
	sleep 0.2
done
before=$(grep -c . "$T/tcp.out")
sleep 2
touch "$T/tcp.stop"
wait "$TCP_PID" 2>/dev/null
kill -INT "$PING_PID" 2>/dev/null
wait "$PING_PID" 2>/dev/null
final=$(grep '"final"' "$T/tcp.out")
echo "tcp: $final"
echo "$final" | grep -q '"open": true' || bad "the TCP connection broke"
echo "ping: $(grep -a 'packets transmitted' "$T/ping.out")"
nb_exec sw ping -c 1 -W 2 "$NB_VM4" >/dev/null || bad "the guest does not answer ping"

# Exactly one QEMU; the source is clean.
qb_expect_on dst "after the migration" || fail=1
kill -0 "$SRC_PID" 2>/dev/null && bad "the source QEMU (pid $SRC_PID) still runs"
nb_exec src ip link show qt0 >/dev/null 2>&1 && bad "the source tap is still there"
[ -e "$QB_SHM/src-$QB_NAME.ram" ] && bad "the source RAM file is still there"
[ -d "$T/src/qemu/$QB_NAME.tpm" ] && bad "the source vTPM state is still there"
nb_exec dst ip link show qt0 | grep -q ',UP' || bad "the destination tap is not up"
grep -h 'downtime:\|scan [0-9]*:\|device state' "$T/send.err" | sed 's/^/  /'
[ "$fail" = 0 ] && echo "PASS"
exit $fail
