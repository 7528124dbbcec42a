#!/usr/bin/env bash
# Two hosts and a switch in network namespaces: a peer on the switch pings
# the VM and keeps a UDP flow while its NIC moves from the source host to
# the destination (source vif down = VM paused, destination vif up +
# announce = resumed, source NIC removed). Asserts: the announcement frames
# captured on the switch's destination port are well-formed (5 RARP, 5
# GARP, 5 NA, nothing malformed) on QEMU's schedule, the bridge's entry for
# the VM's MAC moves to the destination port, and afterwards ICMP (v4, v6)
# and UDP reach the VM on the destination with nothing lost.
set -u
. "$SMG_SRC/test/net/netbed.sh"
nb_init
S=$SECMIG
fail=0
bad() { echo "FAIL: $*"; fail=1; }
wait_for() { # file pattern tries(x50ms)
	for _ in $(seq "$3"); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
	return 1
}
jnum() { # file event key -> number from the last line of that event
	grep "\"event\":\"$2\"" "$1" | tail -1 | sed -n "s/.*\"$3\":\([0-9]*\).*/\1/p"
}

nb_up || { echo "FAIL: test bed"; exit 1; }
T=$NB_TMP
nic=(--vif vif-vm --bridge hbr --mac "$NB_VM_MAC" --addr "$NB_VM4/24" --addr "$NB_VM6/64")

nb_exec src "$S" net nic prepare --ns "$NB_P-vm-src" "${nic[@]}" || bad "prepare on source"
nb_exec src "$S" net nic up --ns "$NB_P-vm-src" "${nic[@]}" >/dev/null || bad "up on source"
nb_bg vm-src "$T/echo-src" "$SMG_NETTOOL" udp-echo --port 7007
wait_for "$T/echo-src" udp_echo_ready 100 || bad "udp echo on source"
nb_exec sw ping -c 1 -W 2 "$NB_VM4" >/dev/null || bad "VM IPv4 unreachable on source"
nb_exec sw ping -c 1 -W 2 "$NB_VM6" >/dev/null || bad "VM IPv6 unreachable on source"
[ "$(nb_fdb_port "$NB_VM_MAC")" = sw-src ] || bad "fdb before: '$(nb_fdb_port "$NB_VM_MAC")', want sw-src"

# Destination skeleton: NIC built, vif down, the VM's UDP service ready.
nb_exec dst "$S" net nic prepare --ns "$NB_P-vm-dst" "${nic[@]}" || bad "prepare on destination"
nb_bg vm-dst "$T/echo-dst" "$SMG_NETTOOL" udp-echo --port 7007
wait_for "$T/echo-dst" udp_echo_ready 100 || bad "udp echo on destination"

nb_bg sw "$T/probe" "$SMG_NETTOOL" probe --to "$NB_VM4" --udp-port 7007 --interval-ms 10
probe=$NB_PID
# The capture ends at its frame count; its deadline only bounds a failure
# (generous: under load the migration before the announce can take seconds).
nb_bg sw "$T/cap" "$SMG_NETTOOL" capture --if sw-dst --mac "$NB_VM_MAC" --count 15 --timeout-ms 60000
cap=$NB_PID
nb_bg sw "$T/fdb" "$S" net fdb-wait --bridge br0 --port sw-dst --mac "$NB_VM_MAC" --timeout-ms 60000
fdbw=$NB_PID
wait_for "$T/cap" capture_ready 100 || bad "capture did not start"
wait_for "$T/probe" probe_started 100 || bad "probe did not start"
sleep 0.3

# The move. While the source vif is down (VM paused) the VM is unreachable.
nb_exec src "$S" net nic down --ns "$NB_P-vm-src" "${nic[@]}" >"$T/down" || bad "down on source"
nb_exec sw ping -c 1 -W 1 "$NB_VM4" >/dev/null && bad "VM answered while paused"
nb_exec dst "$S" net nic up --ns "$NB_P-vm-dst" "${nic[@]}" --announce >"$T/ann" ||
	bad "up + announce on destination"
nb_exec src "$S" net nic remove --ns "$NB_P-vm-src" "${nic[@]}" || bad "remove on source"
sleep 0.3
nb_kill "$probe"
wait "$cap" 2>/dev/null
wait "$fdbw" 2>/dev/null || bad "fdb never pointed at sw-dst: $(cat "$T/fdb")"

# Announcements: QEMU's schedule, one JSON event per round.
rounds=$(grep -c '"event":"announce"' "$T/ann")
[ "$rounds" = 5 ] || bad "announce events: $rounds, want 5"
delays=$(sed -n 's/.*"delay_ms":\([0-9]*\).*/\1/p' "$T/ann" | tr '\n' ' ')
[ "$delays" = "0 50 150 250 350 " ] || bad "announce delays '$delays'"
grep -q '"sent":3' "$T/ann" || bad "announce rounds did not send 3 frames"
# Frames on the wire, parsed.
[ "$(jnum "$T/cap" capture_done rarp)" = 5 ] || bad "rarp frames: $(tail -1 "$T/cap")"
[ "$(jnum "$T/cap" capture_done garp)" = 5 ] || bad "garp frames: $(tail -1 "$T/cap")"
[ "$(jnum "$T/cap" capture_done na)" = 5 ] || bad "na frames: $(tail -1 "$T/cap")"
[ "$(jnum "$T/cap" capture_done bad)" = 0 ] || bad "malformed frames: $(grep bad_frame "$T/cap")"
grep -q "\"kind\":\"garp\",\"mac\":\"$NB_VM_MAC\",\"ip\":\"$NB_VM4\"" "$T/cap" || bad "garp ip"
grep -q "\"kind\":\"na\",\"mac\":\"$NB_VM_MAC\",\"ip\":\"$NB_VM6\"" "$T/cap" || bad "na ip"
# The switch moved, and the flow reached the VM before and after.
[ "$(nb_fdb_port "$NB_VM_MAC")" = sw-dst ] || bad "fdb after: '$(nb_fdb_port "$NB_VM_MAC")'"
[ "$(jnum "$T/probe" probe icmp_recv)" -gt 0 ] 2>/dev/null || bad "probe: $(cat "$T/probe")"
[ "$(jnum "$T/probe" probe udp_recv)" -gt 0 ] 2>/dev/null || bad "probe: $(cat "$T/probe")"
ip netns list | grep -q "^$NB_P-vm-src" && bad "source VM namespace still there"
nb_exec sw "$SMG_NETTOOL" probe --to "$NB_VM4" --udp-port 7007 --interval-ms 10 --duration-ms 300 >"$T/after"
[ "$(jnum "$T/after" probe icmp_lost)" = 0 ] && [ "$(jnum "$T/after" probe udp_lost)" = 0 ] &&
	[ "$(jnum "$T/after" probe icmp_recv)" -gt 0 ] 2>/dev/null || bad "after the move: $(cat "$T/after")"
nb_exec sw ping -c 1 -W 2 "$NB_VM6" >/dev/null || bad "VM IPv6 unreachable on destination"
echo "during the move: $(grep '"event":"probe"' "$T/probe")"

# A configured schedule: 2 rounds, 10 ms apart.
nb_bg sw "$T/cap2" "$SMG_NETTOOL" capture --if sw-dst --mac "$NB_VM_MAC" --count 6 --timeout-ms 60000
cap=$NB_PID
wait_for "$T/cap2" capture_ready 100
nb_exec dst "$S" net announce --ns "$NB_P-vm-dst" --mac "$NB_VM_MAC" --addr "$NB_VM4" \
	--addr "$NB_VM6" --rounds 2 --initial-ms 10 --max-ms 10 >"$T/ann2" || bad "announce 2 rounds"
wait "$cap" 2>/dev/null
[ "$(grep -c '"event":"announce"' "$T/ann2")" = 2 ] || bad "2-round schedule: $(cat "$T/ann2")"
[ "$(jnum "$T/cap2" capture_done rarp)" = 2 ] || bad "2-round capture: $(tail -1 "$T/cap2")"
# Bad input: clear usage errors, documented code 2.
nb_exec dst "$S" net announce --ns x --mac 01:00:00:00:00:01 2>/dev/null; [ $? = 2 ] || bad "multicast MAC accepted"
nb_exec dst "$S" net nic prepare --ns "a/b" "${nic[@]}" 2>/dev/null; [ $? = 2 ] || bad "bad ns name accepted"
nb_exec dst "$S" net nic frob --ns x 2>/dev/null; [ $? = 2 ] || bad "unknown verb accepted"

[ $fail = 0 ] && echo "nic_move: all checks passed"
exit $fail
