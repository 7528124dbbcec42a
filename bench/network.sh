#!/usr/bin/env bash
# bench/network.sh [BUILD_DIR]: network clean-up in the two-host test bed.
# Per run, the VM NIC moves between the hosts (source vif down = pause,
# destination vif up = resume, then the announcement) while the switch
# peer pings the VM every 10 ms. Reports, median of 5 runs:
#   fdb_move_ms  resume -> the bridge's entry for the VM MAC points at the
#                destination port (kernel fdb notification)
#   pings_lost   echo requests without a reply across the move
# and the same move without an announcement (the peer: what the switch
# does when nobody tells it), measured in the same run. Last line: JSON.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-release}
S=${SECMIG:-$build/secmig}
[ -x "$S" ] || { echo "bench/network: build first: bash scripts/build.sh release" >&2; exit 1; }
. "$top/test/net/netbed.sh"
nb_init
nb_up || exit 1
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
	nb_bg sw "$T/probe" "$S" -q net probe --to "$NB_VM4" --interval-ms 10
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
echo "median fdb_move_ms $mf (target <= 10: $(awk -v a="$mf" 'BEGIN{printf "%.2f", a/10}')x of limit)," \
	"without announce $mn (${ratio}x slower); pings_lost $ml (target <= 3)"
echo "{\"fdb_move_ms\":$mf,\"pings_lost\":$ml,\"fdb_move_ms_no_announce\":$mn,\"no_announce_ratio\":$ratio,\"runs\":$RUNS,\"ping_interval_ms\":10,\"target_fdb_move_ms\":10,\"target_pings_lost\":3}"
