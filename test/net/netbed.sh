#!/usr/bin/env bash
# netbed.sh: a two-host test bed in network namespaces. Source it, then:
#
#   nb_init            # skip (exit 77) unless root + ip netns work; set a trap
#   nb_up              # build the topology below
#   nb_exec src CMD..  # run CMD in a host (src, dst, sw, vm-*)
#   nb_bg src LOG CMD..# start CMD in the background there; PID in NB_PID
#   nb_fdb_port MAC    # the switch port that the bridge's entry for MAC uses
#   nb_sim_host src S  # a `secmig sim host` daemon there; NB_SIM_DIR
#   nb_swtpm src       # a swtpm on that host's loopback; NB_TCTI
#   nb_down            # (also run by the trap) kill our PIDs, delete our netns
#
#   namespace $NB_P-sw (the data-centre switch)
#     br0 10.77.0.254/24 fd77::254/64  <- the peer endpoint lives here
#      |- sw-src <veth> "uplink" in $NB_P-src, enslaved to hbr (host bridge)
#      |                 hbr 10.77.0.1/24 fd77::1/64
#      '- sw-dst <veth> "uplink" in $NB_P-dst, enslaved to hbr
#                        hbr 10.77.0.2/24 fd77::2/64
#
# A VM's NIC is a further namespace ($NB_P-vm-<host>) holding eth0 with the
# VM's MAC and addresses, veth-paired with a vif on the host's hbr (see
# engine/netid.c; `secmig net nic`), like a Xen vif on xenbr0.
#
# Every name carries NB_P (smgnet<pid> by default), so concurrent runs do
# not collide, and teardown only ever touches names with that prefix and
# PIDs it started itself.

NB_P=${NB_P:-smgnet$$}
NB_SW=$NB_P-sw
NB_SRC=$NB_P-src
NB_DST=$NB_P-dst
NB_PEER4=10.77.0.254
NB_PEER6=fd77::254
NB_SRC4=10.77.0.1
NB_DST4=10.77.0.2
NB_SRC6=fd77::1
NB_DST6=fd77::2
NB_VM_MAC=${NB_VM_MAC:-52:54:00:77:00:64}
NB_VM4=${NB_VM4:-10.77.0.100}
NB_VM6=${NB_VM6:-fd77::100}
NB_PIDS=()
NB_NETNS=()
NB_TMP=""

nb_log() { echo "netbed: $*" >&2; }

nb_ns() { # host -> namespace name
	case $1 in
	sw) echo "$NB_SW" ;;
	src) echo "$NB_SRC" ;;
	dst) echo "$NB_DST" ;;
	vm-*) echo "$NB_P-$1" ;;
	*) nb_log "unknown host '$1'"; return 1 ;;
	esac
}

nb_init() {
	if [ "$(id -u)" != 0 ]; then
		nb_log "needs root for network namespaces; skipping"
		exit 77
	fi
	if ! command -v ip >/dev/null || ! ip netns add "$NB_P-probe" 2>/dev/null; then
		nb_log "ip netns does not work here; skipping"
		exit 77
	fi
	ip netns del "$NB_P-probe"
	NB_TMP=$(mktemp -d "/tmp/$NB_P.XXXXXX")
	trap 'nb_down' EXIT
	trap 'nb_down; exit 130' INT
	trap 'nb_down; exit 143' TERM HUP
}

nb_addns() {
	ip netns add "$1" || return 1
	NB_NETNS+=("$1")
	ip -n "$1" link set lo up
	# No DAD: an address is usable at once, and no probe races the test.
	ip netns exec "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
		net.ipv6.conf.default.accept_dad=0
}

nb_host() { # name ns uplink-peer addr4 addr6
	local ns=$2
	nb_addns "$ns" || return 1
	ip -n "$NB_SW" link add "sw-$1" type veth peer name uplink netns "$ns" || return 1
	ip -n "$ns" link add hbr type bridge || return 1
	ip -n "$ns" link set hbr type bridge forward_delay 0 mcast_snooping 0
	# Pin the bridge's MAC: otherwise it follows its lowest port MAC and
	# changes whenever a VM's vif comes or goes.
	ip -n "$ns" link set hbr address "$(ip -n "$ns" -br link show uplink | awk '{print $3}')"
	ip -n "$ns" link set dev uplink master hbr
	ip -n "$ns" link set dev uplink up
	ip -n "$ns" link set hbr up
	ip -n "$ns" addr add "$3/24" dev hbr
	ip -n "$ns" addr add "$4/64" dev hbr nodad
	ip -n "$NB_SW" link set "sw-$1" master br0 up
}

nb_up() {
	nb_addns "$NB_SW" || return 1
	ip -n "$NB_SW" link add br0 type bridge || return 1
	ip -n "$NB_SW" link set br0 type bridge forward_delay 0 mcast_snooping 0
	ip -n "$NB_SW" link set br0 up
	ip -n "$NB_SW" addr add "$NB_PEER4/24" dev br0
	ip -n "$NB_SW" addr add "$NB_PEER6/64" dev br0 nodad
	# The peer probes with unprivileged-style ping sockets (smg-nettool probe).
	ip netns exec "$NB_SW" sysctl -qw net.ipv4.ping_group_range="0 2147483647"
	nb_host src "$NB_SRC" "$NB_SRC4" "$NB_SRC6" || return 1
	nb_host dst "$NB_DST" "$NB_DST4" "$NB_DST6" || return 1
	# The hosts reach each other across the switch.
	nb_exec src ping -c 1 -W 2 "$NB_DST4" >/dev/null ||
		{ nb_log "hosts cannot reach each other"; return 1; }
}

# Commands enter a host with nsenter --net, not `ip netns exec`: the latter
# also gives the command a private (slave) mount namespace, and a VM
# namespace that secmig creates there (`ip netns add` is a bind mount under
# /run/netns) would vanish when the command exits. secmig and the tools it
# runs speak netlink, so they do not need ip netns exec's /sys remount.
nb_exec() { # host cmd...
	local ns
	ns=$(nb_ns "$1") || return 1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}

nb_bg() { # host logfile cmd...   -> NB_PID
	local ns log=$2
	ns=$(nb_ns "$1") || return 1
	shift 2
	nsenter --net="/run/netns/$ns" "$@" >"$log" 2>&1 &
	NB_PID=$!
	NB_PIDS+=("$NB_PID")
}

nb_kill() { # pid [signal]
	kill "-${2:-TERM}" "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

wait_file() { # path tries(x50ms)
	for _ in $(seq "${2:-100}"); do [ -e "$1" ] && return 0; sleep 0.05; done
	return 1
}

# A sim host daemon in HOST (state in $NB_TMP/sim-HOST); sets NB_SIM_DIR.
nb_sim_host() { # host secmig
	NB_SIM_DIR=$NB_TMP/sim-$1
	mkdir -p "$NB_SIM_DIR"
	nb_bg "$1" "$NB_SIM_DIR/log" "$2" sim --state-dir "$NB_SIM_DIR" host
	wait_file "$NB_SIM_DIR/sim.sock" || { nb_log "sim host in $1 did not start"; return 1; }
}

# A swtpm for HOST on that host's own loopback (each host namespace has
# its own, so the fixed ports never collide); sets NB_TCTI. Returns 77
# when swtpm is not installed.
nb_swtpm() { # host
	command -v swtpm >/dev/null || return 77
	local d=$NB_TMP/tpm-$1
	mkdir -p "$d"
	nb_bg "$1" "$d/log" swtpm socket --tpm2 --tpmstate dir="$d" \
		--server type=tcp,port=2321,bindaddr=127.0.0.1 \
		--ctrl type=tcp,port=2322,bindaddr=127.0.0.1 --flags not-need-init,startup-clear
	NB_TCTI="swtpm:host=127.0.0.1,port=2321"
	for _ in $(seq 100); do
		nb_exec "$1" bash -c 'exec 3<>/dev/tcp/127.0.0.1/2321' 2>/dev/null && return 0
		sleep 0.05
	done
	nb_log "swtpm in $1 did not start"
	return 1
}

# Port (interface name) of the dynamic fdb entry for MAC on the switch, or
# nothing when the bridge has not learnt it.
nb_fdb_port() {
	nb_exec sw bridge fdb show br br0 2>/dev/null |
		awk -v m="${1,,}" '$1 == m && $0 !~ /permanent/ { print $3; exit }'
}

nb_down() {
	local p ns
	trap - EXIT INT TERM HUP
	for p in "${NB_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${NB_PIDS[@]}"; do
		# A process that ignores TERM gets KILL after a second.
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	NB_PIDS=()
	# Namespaces we made, plus VM namespaces secmig made for us: all carry
	# our unique prefix and nothing else does.
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
		case $ns in "$NB_P"-*) NB_NETNS+=("$ns") ;; esac
	done
	for ns in "${NB_NETNS[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	NB_NETNS=()
	[ -n "$NB_TMP" ] && rm -rf "$NB_TMP"
	NB_TMP=""
	return 0
}
