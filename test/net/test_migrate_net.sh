#!/usr/bin/env bash
# A real migration across the two-host test bed: `secmig send` in the
# source host's namespace, `secmig recv` in the destination's, the VM's NIC
# from its config. A peer on the switch pings the VM and keeps a UDP flow
# throughout. Afterwards: the VM runs and verifies on the destination only,
# the switch forwards its MAC to the destination port, the recv JSON stream
# holds 5 announce events, the frames on the wire parse, the source NIC is
# gone, and ICMP + UDP reach the VM on the destination.
set -u
. "$SMG_SRC/test/net/netbed.sh"
nb_init
. "$SMG_SRC/test/net/lib_mig.sh"

vm vm1
# The echo service of the VM: started in the VM namespaces as they appear.
nb_bg src "$T/echo-src" nsenter --net="/run/netns/$NB_P-s-vm1-0" "$SMG_NETTOOL" udp-echo --port 7007
wait_for "$T/echo-src" udp_echo_ready 100 || bad "udp echo on the source"
[ "$(nb_fdb_port "$NB_VM_MAC")" = sw-src ] ||
	nb_exec sw ping -c 1 -W 2 "$NB_VM4" >/dev/null
[ "$(nb_fdb_port "$NB_VM_MAC")" = sw-src ] || bad "fdb before: '$(nb_fdb_port "$NB_VM_MAC")'"

start_recv
nb_bg sw "$T/probe" "$SMG_NETTOOL" probe --to "$NB_VM4" --udp-port 7007 --interval-ms 10
probe=$NB_PID
nb_bg sw "$T/cap" "$SMG_NETTOOL" capture --if sw-dst --mac "$NB_VM_MAC" --count 15 --timeout-ms 60000
cap=$NB_PID
wait_for "$T/cap" capture_ready 100
wait_for "$T/probe" probe_started 100
# Start the destination's echo as soon as recv has built the VM's NIC.
( for _ in $(seq 400); do
	[ -e "/run/netns/$NB_P-d-vm1-0" ] && exec nsenter --net="/run/netns/$NB_P-d-vm1-0" \
		"$SMG_NETTOOL" udp-echo --port 7007
	sleep 0.025
done ) >"$T/echo-dst" 2>&1 &
NB_PIDS+=($!)
sleep 0.2
send vm1
wait "$RECV_PID" 2>/dev/null
[ "$RC" = 0 ] || bad "send exit $RC: $(tail -3 "$T/send.err")"
wait "$cap" 2>/dev/null
sleep 0.2
nb_kill "$probe"

expect_on dst vm1 "migration"
[ "$(nb_fdb_port "$NB_VM_MAC")" = sw-dst ] || bad "fdb after: '$(nb_fdb_port "$NB_VM_MAC")'"
[ "$(grep -c '"event":"announce"' "$T/recv.all")" = 5 ] ||
	bad "recv announce events: $(grep -c '"event":"announce"' "$T/recv.all")"
grep '"event":"announce"' "$T/recv.all" | grep -q "\"netns\":\"$NB_P-d-vm1-0\"" ||
	bad "announce not from the VM's NIC on the destination"
[ "$(jnum "$T/cap" capture_done rarp)" = 5 ] && [ "$(jnum "$T/cap" capture_done garp)" = 5 ] &&
	[ "$(jnum "$T/cap" capture_done na)" = 5 ] && [ "$(jnum "$T/cap" capture_done bad)" = 0 ] ||
	bad "frames: $(tail -1 "$T/cap")"
[ "$(jnum "$T/probe" probe icmp_recv)" -gt 0 ] 2>/dev/null || bad "probe: $(cat "$T/probe")"
[ "$(jnum "$T/probe" probe udp_recv)" -gt 0 ] 2>/dev/null || bad "probe: $(cat "$T/probe")"
nb_exec sw "$SMG_NETTOOL" probe --to "$NB_VM4" --udp-port 7007 --interval-ms 10 --duration-ms 300 >"$T/after"
[ "$(jnum "$T/after" probe icmp_lost)" = 0 ] && [ "$(jnum "$T/after" probe udp_lost)" = 0 ] &&
	[ "$(jnum "$T/after" probe udp_recv)" -gt 0 ] 2>/dev/null ||
	bad "after the move: $(cat "$T/after") $(cat "$T/echo-dst")"
nb_exec sw ping -c 1 -W 2 "$NB_VM6" >/dev/null || bad "VM IPv6 unreachable on the destination"
echo "during the migration: $(grep '"event":"probe"' "$T/probe")"
echo "send: $(tail -1 "$T/send.out" | cut -c1-300)"

[ $fail = 0 ] && echo "migrate_net: all checks passed"
exit $fail
