#!/usr/bin/env bash
# Issue 7 item 6: a man in the middle in the switch namespace, with its own
# keys, tries to terminate both sessions: it answers the source as "dst"
# (the source connects to it, as if traffic were redirected) and connects
# to the destination as "src". Both ends reject it during the handshake:
# exit 3 (auth), no PLAN, no VM byte, the VM untouched on the source, no
# copy on the destination or at the attacker.
set -u
. "$SMG_SRC/test/net/netbed.sh"
nb_init
. "$SMG_SRC/test/net/lib_mig.sh"

M=$T/sim-sw
nb_sim_host sw "$S" || exit 1
"$S" keygen "$M/mitm.key" >/dev/null || exit 1
# The attacker enrols the real hosts' public keys (they are public).
{ echo "src $(cat "$A/host.key.pub")"; echo "dst $(cat "$B/host.key.pub")"; } >"$M/peers"
chmod 600 "$M/peers"
printf 'storage %s\nvm *\n' "$M" >"$M/defs" && chmod 600 "$M/defs"

vm vm1
# the attacker's own sim host: a receiver refuses to start without its backend
nb_bg sw "$T/mitm-sim" "$S" sim --state-dir "$M" host
wait_file "$M/sim.sock" || bad "attacker's sim host did not start"

# 1. Source -> attacker posing as "dst".
nb_bg sw "$T/mitm-recv" "$S" recv --listen "$NB_PEER4:0" --once --json --state-dir "$M" \
	--name dst --key "$M/mitm.key" --peers "$M/peers" --io-timeout 3000 \
	--insecure-software-mode --defs "$M/defs"
mitm_recv=$NB_PID
wait_for "$T/mitm-recv" '"event":"listening"' 100 || bad "attacker recv did not start"
mport=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/mitm-recv")
send vm1 --to "$NB_PEER4:$mport"
[ "$RC" = 3 ] || bad "source talking to the attacker: exit $RC, want 3 (auth): $(tail -2 "$T/send.err")"
grep -q '"event":"phase"' "$T/send.out" && bad "source started a phase with the attacker"
grep '"event":"result"' "$T/send.out" | grep -q '"outcome":"auth".*"exit_code":3' ||
	bad "source JSON result: $(grep result "$T/send.out")"
grep -q '"bytes_sent":0,' "$T/send.out" || grep -q '"event":"result"' "$T/send.out" ||
	bad "no result line"
grep -q '"bytes_sent":[1-9]' "$T/send.out" && bad "source sent VM bytes to the attacker"
for _ in $(seq 60); do kill -0 "$mitm_recv" 2>/dev/null || break; sleep 0.05; done
nb_kill "$mitm_recv"
grep -q '"event":"phase"' "$T/mitm-recv" && bad "attacker received a PLAN"
[ "$(state_on "$M" vm1)" = absent ] || bad "attacker holds a copy of vm1"
[ "$(state_on "$A" vm1)" = running ] || bad "vm1 is '$(state_on "$A" vm1)' on the source"
"$S" sim --state-dir "$A" verify vm1 >/dev/null 2>&1 || bad "vm1 damaged on the source"
nb_exec sw ping -c 1 -W 2 "$NB_VM4" >/dev/null || bad "vm1 unreachable after the attempt"

# 2. Attacker posing as "src" -> the real destination, with a decoy VM.
{
	echo "name = decoy"; echo "memory = 4M"; echo "vcpus = 1"
	echo "nic = mac=52:54:00:66:66:66,ipv4=10.77.0.66"
} >"$T/decoy.cfg"
nb_exec sw "$S" --quiet sim --state-dir "$M" create "$T/decoy.cfg" >/dev/null || bad "decoy"
start_recv
nb_exec sw "$S" --quiet send --to "$NB_DST4:$PORT" --peer dst --domain decoy --json --state-dir "$M" \
	--name src --key "$M/mitm.key" --peers "$M/peers" --io-timeout 3000 \
	>"$T/mitm-send" 2>"$T/mitm-send.err"
mrc=$?
[ "$mrc" = 3 ] || bad "attacker's send: exit $mrc, want 3 (auth): $(tail -2 "$T/mitm-send.err")"
grep -q '"bytes_sent":[1-9]' "$T/mitm-send" && bad "destination accepted VM bytes from the attacker"
for _ in $(seq 60); do kill -0 "$RECV_PID" 2>/dev/null || break; sleep 0.05; done
nb_kill "$RECV_PID"
grep -q '"event":"phase"' "$T/recv.all" && bad "destination started a phase for the attacker"
grep -qi 'handshake failed' "$T/recv.all" || bad "destination logged no rejection: $(tail -3 "$T/recv.all")"
[ "$(state_on "$B" decoy)" = absent ] || bad "destination holds the decoy"
ip netns list | grep -q "^$NB_P-d-decoy" && bad "destination built the decoy's NIC"

# 3. The real pair still migrates through the same switch afterwards.
start_recv
send vm1
[ "$RC" = 0 ] || bad "real migration after the attack: exit $RC: $(tail -2 "$T/send.err")"
wait "$RECV_PID" 2>/dev/null
expect_on dst vm1 "after the attack"

[ $fail = 0 ] && echo "mitm: all checks passed"
exit $fail
