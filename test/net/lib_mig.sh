# Shared by the two-host migration tests: keys, a sim host per host
# namespace, a VM whose NIC (from its config) lives on the source, recv in
# the destination host, send from the source host. Source after netbed.sh.
S=$SECMIG
fail=0
bad() { echo "FAIL: $*"; fail=1; }
wait_for() { # file pattern tries(x50ms)
	for _ in $(seq "$3"); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
	return 1
}
jnum() { grep "\"event\":\"$2\"" "$1" | tail -1 | sed -n "s/.*\"$3\":\([0-9]*\).*/\1/p"; }

nb_up || { echo "FAIL: test bed"; exit 1; }
T=$NB_TMP
A=$T/sim-src
B=$T/sim-dst
NETA=(--net-bridge hbr --net-ns-prefix "$NB_P-s-")
NETB=(--net-bridge hbr --net-ns-prefix "$NB_P-d-")
nb_sim_host src "$S" || exit 1
nb_sim_host dst "$S" || exit 1
"$S" keygen "$A/host.key" >/dev/null && "$S" keygen "$B/host.key" >/dev/null || exit 1
echo "dst $(cat "$B/host.key.pub")" >"$A/peers"
echo "src $(cat "$A/host.key.pub")" >"$B/peers"
chmod 600 "$A/peers" "$B/peers"
# Each host's own definitions (docs/hostdef.md): VMs on hbr with 52:54:00:*
# MACs in 10.77/16 and fd77::/16, images in the host's state dir.
for h in "$A" "$B"; do
	printf 'storage %s\nbridge hbr\nvm *\n  nic bridge=hbr mac=52:54:00:00:00:00/24 ip=10.77.0.0/16 ip=fd77::/16\n' \
		"$h" >"$h/defs"
	chmod 600 "$h/defs"
done
RECV_SECURITY=(--insecure-software-mode)
vifname() { "$S" net vif-name "$1" 0; }

# vm NAME [WORKLOAD RATE]: create on the source with its NIC up there.
vm() {
	local name=$1
	{
		echo "name = $name"; echo "memory = ${VM_MEM:-16M}"; echo "vcpus = 2"
		echo "workload = ${2:-hotspot}"; echo "dirty_rate = ${3:-5M}"
		echo "hot_writes = 90"; echo "hot_pages = 5"; echo "seed = $RANDOM"
		echo "nic = mac=$NB_VM_MAC,ipv4=$NB_VM4,ipv6=$NB_VM6"
	} >"$T/$name.cfg"
	nb_exec src "$S" --quiet sim --state-dir "$A" create "$T/$name.cfg" >/dev/null ||
		bad "create $name"
	# What the source host's vif hotplug did when the VM started.
	nb_exec src "$S" --quiet net nic prepare --ns "$NB_P-s-$name-0" --vif "$(vifname "$name")" \
		--bridge hbr --mac "$NB_VM_MAC" --addr "$NB_VM4/24" --addr "$NB_VM6/64" &&
		nb_exec src "$S" --quiet net nic up --ns "$NB_P-s-$name-0" --vif "$(vifname "$name")" \
			>/dev/null || bad "NIC of $name on the source"
}

# start_recv [env...]: a --once receiver in the destination host; RECV_PID, PORT.
start_recv() {
	rm -f "$T/recv.all"
	nb_bg dst "$T/recv.all" env "$@" "$S" recv --listen "$NB_DST4:0" --once --json \
		--check-memory --state-dir "$B" --name dst "${NETB[@]}" "${RECV_SECURITY[@]}" \
		--defs "$B/defs" ${RECV_EXTRA[@]+"${RECV_EXTRA[@]}"}
	RECV_PID=$NB_PID
	PORT=
	for _ in $(seq 200); do
		PORT=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/recv.all" 2>/dev/null)
		[ -n "$PORT" ] && break
		sleep 0.05
	done
	[ -n "$PORT" ] || bad "receiver did not start: $(cat "$T/recv.all")"
}

# send NAME [--to ADDR] [flags...]: RC; JSON lines in $T/send.out
send() {
	local name=$1 to=$NB_DST4:${PORT:-0}; shift
	if [ "${1:-}" = --to ]; then to=$2; shift 2; fi
	nb_exec src "$S" --quiet send --to "$to" --peer dst --on-no-converge extend --domain "$name" --json --state-dir "$A" \
		--name src "${NETA[@]}" "$@" >"$T/send.out" 2>"$T/send.err"
	RC=$?
}

state_on() { # HOSTDIR NAME
	local s
	s=$("$S" sim --state-dir "$1" list 2>/dev/null | awk -v n="$2" '$1 == n {print $2}')
	echo "${s:-absent}"
}

# The §7 invariant plus the network one: the VM runs and verifies on
# exactly one host, the other has no copy, and the VM's IP answers.
expect_on() { # src|dst NAME WHAT
	local here=$A there=$B
	[ "$1" = dst ] && here=$B there=$A
	for _ in $(seq 60); do [ "$(state_on "$there" "$2")" = absent ] && break; sleep 0.05; done
	for _ in $(seq 60); do [ "$(state_on "$here" "$2")" = running ] && break; sleep 0.05; done
	[ "$(state_on "$here" "$2")" = running ] || bad "$3: $2 is '$(state_on "$here" "$2")' on $1"
	"$S" sim --state-dir "$here" verify "$2" >/dev/null 2>&1 || bad "$3: $2 does not verify on $1"
	[ "$(state_on "$there" "$2")" = absent ] || bad "$3: $2 is '$(state_on "$there" "$2")' on the other host"
	nb_exec sw ping -c 1 -W 2 "$NB_VM4" >/dev/null || bad "$3: VM IP does not answer"
	local other=d ohost=dst
	[ "$1" = dst ] && other=s ohost=src
	if ip netns list | grep -q "^$NB_P-$other-$2-"; then
		# A receiver that was SIGKILLed cannot clean up: its NIC may stay,
		# but silent (vif down), never answering for the VM.
		if [ "${NIC_LEFT_OK:-0}" = 1 ]; then
			nb_exec $ohost ip link show "$(vifname "$2")" 2>/dev/null | grep -q ',UP' &&
				bad "$3: NIC of $2 left UP on the other host"
		else
			bad "$3: NIC of $2 left on the other host"
		fi
	fi
}

# Remove the VM (and its NIC) wherever it is.
vm_gone() { # NAME
	"$S" sim --state-dir "$A" destroy "$1" >/dev/null 2>&1
	"$S" sim --state-dir "$B" destroy "$1" >/dev/null 2>&1
	for h in s d; do
		ip netns del "$NB_P-$h-$1-0" 2>/dev/null
	done
	nb_exec src ip link del "$(vifname "$1")" 2>/dev/null
	nb_exec dst ip link del "$(vifname "$1")" 2>/dev/null
	return 0
}
