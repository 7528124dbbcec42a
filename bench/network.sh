#!/usr/bin/env bash
# bench/network.sh [BUILD_DIR]: network clean-up in the two-host test bed.
# Part 1, real migrations: `secmig send`/`recv` move a sim VM (16M,
# hot-spot writer) between the host namespaces, back and forth, while the
# switch peer pings the VM every 10 ms. Median of 5:
#   fdb_move_ms  resume (recv's nic_resume event) -> the switch's entry for
#                the VM MAC points at the destination port (kernel fdb
#                notification, secmig net fdb-wait)
#   pings_lost   echo requests without a reply across the migration,
#                next to what the measured downtime alone would cost.
# Part 2, the NIC move alone (no VM memory to copy): with the announcement
# and without it (the peer: what the switch does when nobody tells it).
# Last line: JSON with fdb_move_ms and pings_lost (part 1).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-release}
S=${SECMIG:-$build/secmig}
SMG_NETTOOL=${SMG_NETTOOL:-$build/smg-nettool} # the bed's probe (test tooling)
[ -x "$S" ] || { echo "bench/network: build first: bash scripts/build.sh release" >&2; exit 1; }
. "$top/test/net/netbed.sh"
nb_init
export SECMIG=$S
. "$top/test/net/lib_mig.sh" # nb_up, sim hosts, keys; vm, start_recv, send
RUNS=${RUNS:-5}
NOANN_TIMEOUT_MS=2000
T=$NB_TMP
nic=(--vif vif-vm --bridge hbr --mac "$NB_VM_MAC" --addr "$NB_VM4/24" --addr "$NB_VM6/64")
num() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1" | tail -1; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : -1)}'; }
wait_for() { for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done; return 1; }

nb_exec src "$S" -q net nic prepare --ns "$NB_P-vm-src" "${nic[@]}" || exit 1
nb_exec src "$S" -q net nic up --ns "$NB_P-vm-src" "${nic[@]}" >/dev/null || exit 1
nb_exec sw ping -c 3 -i 0.05 -W 1 "$NB_VM4" >/dev/null || { echo "VM unreachable" >&2; exit 1; }
here=src

# move FROM TO ANNOUNCE(yes|no) -> "fdb_ms lost" on stdout
move() {
	local from=$1 to=$2 ann=$3 probe fdbw t_up t_fdb
	nb_exec "$to" "$S" -q net nic prepare --ns "$NB_P-vm-$to" "${nic[@]}" || return 1
	nb_bg sw "$T/fdb" "$S" -q net fdb-wait --bridge br0 --port "sw-$to" --mac "$NB_VM_MAC" \
		--timeout-ms "$NOANN_TIMEOUT_MS"
	fdbw=$NB_PID
	nb_bg sw "$T/probe" "$SMG_NETTOOL" -q probe --to "$NB_VM4" --interval-ms 10
	probe=$NB_PID
	wait_for "$T/probe" probe_started
	sleep 0.2
	nb_exec "$from" "$S" -q net nic down --ns "$NB_P-vm-$from" "${nic[@]}" >/dev/null
	if [ "$ann" = yes ]; then
		nb_exec "$to" "$S" -q net nic up --ns "$NB_P-vm-$to" "${nic[@]}" --announce >"$T/up"
	else
		nb_exec "$to" "$S" -q net nic up --ns "$NB_P-vm-$to" "${nic[@]}" >"$T/up"
	fi
	nb_exec "$from" "$S" -q net nic remove --ns "$NB_P-vm-$from" "${nic[@]}"
	wait "$fdbw" 2>/dev/null
	sleep 0.2
	nb_kill "$probe"
	t_up=$(grep nic_up "$T/up" | sed -n 's/.*"t_mono_us":\([0-9]*\).*/\1/p')
	t_fdb=$(num "$T/fdb" t_mono_us)
	if [ -n "$t_fdb" ]; then
		echo "$(((t_fdb - t_up) / 1000)).$(((t_fdb - t_up) % 1000 / 100)) $(num "$T/probe" icmp_lost)"
	else
		echo ">$NOANN_TIMEOUT_MS $(num "$T/probe" icmp_lost)"
	fi
}

fdb=() lost=() noann=()
for i in $(seq "$RUNS"); do
	there=$([ $here = src ] && echo dst || echo src)
	read -r f l < <(move $here $there yes) || exit 1
	echo "run $i with announce    ($here -> $there): fdb_move_ms=$f pings_lost=$l"
	fdb+=("$f") lost+=("$l")
	here=$there
	there=$([ $here = src ] && echo dst || echo src)
	read -r f l < <(move $here $there no) || exit 1
	echo "run $i without announce ($here -> $there): fdb_move_ms=$f pings_lost=$l"
	noann+=("${f#>}")
	here=$there
done
mf=$(printf '%s\n' "${fdb[@]}" | median)
ml=$(printf '%s\n' "${lost[@]}" | median)
mn=$(printf '%s\n' "${noann[@]}" | median)
ratio=$(awk -v a="$mn" -v b="$mf" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }')
echo "NIC move alone: median fdb_move_ms $mf, without announce $mn (${ratio}x slower);" \
	"pings_lost $ml"
nb_exec $here "$S" -q net nic remove --ns "$NB_P-vm-$here" "${nic[@]}"

# Part 1: real migrations, src -> dst -> src ...
vm benchvm
mig_fdb=() mig_lost=() mig_down=()
from=src
for i in $(seq "$RUNS"); do
	to=$([ $from = src ] && echo dst || echo src)
	if [ $to = dst ]; then
		start_recv
		sargs=(--state-dir "$A" --name src --peer dst "${NETA[@]}")
		rhost=$NB_DST4
	else
		rm -f "$T/recv.all"
		nb_bg src "$T/recv.all" "$S" recv --listen "$NB_SRC4:0" --once --json \
			--state-dir "$A" --name src "${NETA[@]}" --insecure-software-mode \
			--defs "$A/defs"
		RECV_PID=$NB_PID
		wait_for "$T/recv.all" '"event":"listening"' 200
		PORT=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/recv.all")
		sargs=(--state-dir "$B" --name dst --peer src "${NETB[@]}")
		rhost=$NB_SRC4
	fi
	nb_bg sw "$T/fdb" "$S" -q net fdb-wait --bridge br0 --port "sw-$to" --mac "$NB_VM_MAC" \
		--timeout-ms 20000
	fdbw=$NB_PID
	nb_bg sw "$T/probe" "$SMG_NETTOOL" -q probe --to "$NB_VM4" --interval-ms 10
	probe=$NB_PID
	wait_for "$T/probe" probe_started 100
	sleep 0.2
	nb_exec $from "$S" --quiet send --to "$rhost:$PORT" --domain benchvm --json \
		"${sargs[@]}" >"$T/send.out" 2>"$T/send.err" ||
		{ echo "bench/network: migration $i failed: $(tail -2 "$T/send.err")" >&2; exit 1; }
	wait "$RECV_PID" 2>/dev/null
	wait "$fdbw" 2>/dev/null
	sleep 0.2
	nb_kill "$probe"
	t_res=$(grep '"event":"nic_resume"' "$T/recv.all" | sed -n 's/.*"t_mono_us":\([0-9]*\).*/\1/p')
	t_fdb=$(num "$T/fdb" t_mono_us)
	d=$(grep '"event":"result"' "$T/send.out" | sed -n 's/.*"downtime_ms":\([0-9]*\).*/\1/p')
	l=$(num "$T/probe" icmp_lost)
	f=$(awk -v a="$t_fdb" -v b="$t_res" 'BEGIN { printf "%.1f", (a - b) / 1000 }')
	echo "migration $i ($from -> $to): downtime_ms=$d fdb_move_ms=$f pings_lost=$l"
	mig_fdb+=("$f") mig_lost+=("$l") mig_down+=("$d")
	from=$to
done
gf=$(printf '%s\n' "${mig_fdb[@]}" | median)
gl=$(printf '%s\n' "${mig_lost[@]}" | median)
gd=$(printf '%s\n' "${mig_down[@]}" | median)
# What the downtime alone costs at one ping per 10 ms: the rest is ours.
exp=$(awk -v d="$gd" 'BEGIN { printf "%d", d / 10 }')
echo "real migrations: median downtime_ms $gd, fdb_move_ms $gf" \
	"($(awk -v a="$gf" 'BEGIN{printf "%.2f", a/10}')x of the 10 ms target)," \
	"pings_lost $gl (downtime alone: $exp; target <= 3)"
echo "{\"fdb_move_ms\":$gf,\"pings_lost\":$gl,\"downtime_ms\":$gd,\"pings_lost_from_downtime\":$exp,\"nic_only_fdb_move_ms\":$mf,\"nic_only_pings_lost\":$ml,\"nic_only_fdb_move_ms_no_announce\":$mn,\"no_announce_ratio\":$ratio,\"runs\":$RUNS,\"ping_interval_ms\":10,\"target_fdb_move_ms\":10,\"target_pings_lost\":3}"
