#!/usr/bin/env bash
# Issue 14, fault cells on the real QEMU guest: kill the sender, kill the
# receiver or cut the link at each phase of a `secmig --backend qemu`
# migration; after every cell the guest runs exactly once (one QEMU,
# running, ticking with clean self-checks) and the other host keeps nothing
# of it (no QEMU, tap, RAM file or vTPM state). A phase is hit exactly: the
# engine's fault point pauses one side there (SMG_FI + SMG_FI_STALL_MS),
# and in that pause the test SIGKILLs a process or arms the proxy in the
# switch namespace, whose next bytes on the chosen connection are the
# phase's own. A killed sender leaves the QEMU it drove behind: the
# backend's guard process resumes it (before COMMIT) or leaves it paused
# for `secmig resolve` (after); a killed receiver's guard kills its
# incoming QEMU unless COMMIT was recorded.
#
# SMG_QEMU_FAULT_CELLS="phase:fault ..." picks cells ("all": every one);
# phases precopy stopcopy before_ready after_commit, faults kill_src
# kill_dst cut.
set -u
. "$SMG_SRC/test/net/netbed.sh"
. "$SMG_SRC/test/qemu/qemubed.sh"
fail=0
bad() { echo "FAIL: $*"; fail=1; }
STALL_MS=1500
IO_TIMEOUT=5000
DEFAULT_CELLS="precopy:kill_dst stopcopy:kill_src stopcopy:cut before_ready:kill_dst
	after_commit:kill_src after_commit:kill_dst"
cells=${SMG_QEMU_FAULT_CELLS:-$DEFAULT_CELLS}
if [ "$cells" = all ]; then
	cells=""
	for p in precopy stopcopy before_ready after_commit; do
		for f in kill_src kill_dst cut; do cells="$cells $p:$f"; done
	done
fi

qb_init
qb_define src
qb_define dst
qb_keys || { echo "FAIL: keys"; exit 1; }
qb_start src || { echo "FAIL: start: $(cat "$T/src/qemu/$QB_NAME.log")"; exit 1; }
qb_wait_tick src 3 || { echo "FAIL: guest did not tick"; cat "$T/src/serial.log"; exit 1; }
AT=src

# phase fault -> "side point conn dir": who stalls where, and which
# connection (0 control, 1 data) in which direction carries the phase's
# next bytes for the proxy to cut.
window() {
	case $1:$2 in
	precopy:kill_dst) echo "dst dst_after_round0 1 c2s" ;;
	precopy:*) echo "src src_after_round0 1 c2s" ;;
	stopcopy:*) echo "src src_after_pause 1 c2s" ;;
	before_ready:*) echo "dst dst_before_ready 0 s2c" ;;
	after_commit:kill_dst) echo "dst dst_after_commit 0 s2c" ;;
	after_commit:*) echo "src src_after_commit 0 c2s" ;;
	esac
}

# Where the VM must run after the cell: only a COMMIT the destination
# recorded moves it.
expected() {
	[ "$1:$2" = after_commit:kill_dst ] && echo to || echo from
}

# Nothing of the VM is left on HOST.
clean_on() { # host what
	local s
	s=$(qb_status "$1")
	[ "${s%% *}" = absent ] || bad "$2: a QEMU is '$s' on $1"
	nb_exec "$1" ip link show qt0 >/dev/null 2>&1 && bad "$2: tap left on $1"
	[ -e "$QB_SHM/$1-$QB_NAME.ram" ] && bad "$2: RAM file left on $1"
	[ -e "$T/$1/qemu/$QB_NAME.tpm/tpm2-00.permall" ] && bad "$2: vTPM state left on $1"
	return 0
}

resolve() { # from to
	qb_recv "$2" || return 1
	nb_exec "$1" "$SECMIG" -v resolve --domain "$QB_NAME" --to "$(qb_addr "$2"):$QB_PORT" \
		--json --state-dir "$T/$1" --name "$1" --backend qemu >"$T/resolve.out" 2>&1
	local rc=$?
	wait "$QB_RECV_PID" 2>/dev/null
	[ $rc = 0 ] || bad "resolve exit $rc: $(tail -3 "$T/resolve.out")"
	echo "  resolve: $(grep -o '"outcome":"[a-z_]*"' "$T/resolve.out" | tail -1)"
}

run_cell() { # phase fault
	local phase=$1 fault=$2 from=$AT to side point conn dir senv=() renv=() log
	local proxy_pid="" send_pid to_addr pport rc where mark
	[ "$from" = src ] && to=dst || to=src
	read -r side point conn dir < <(window "$phase" "$fault")
	[ "$side" = src ] && senv=(SMG_FI="$point" SMG_FI_STALL_MS=$STALL_MS)
	[ "$side" = dst ] && renv=(SMG_FI="$point" SMG_FI_STALL_MS=$STALL_MS)
	mark=$(qb_last_tick "$from")
	[ "$(qb_last_tick "$to")" -gt "$mark" ] && mark=$(qb_last_tick "$to")
	qb_recv "$to" ${renv[@]+"${renv[@]}"} -- --io-timeout "$IO_TIMEOUT" || return 1
	to_addr=$(qb_addr "$to"):$QB_PORT
	if [ "$fault" = cut ]; then
		nb_bg sw "$T/proxy.out" "$SMG_NETTOOL" proxy --listen "$NB_PEER4:0" --to "$to_addr" \
			--fault cut --conn "$conn" --dir "$dir" --at-byte 0 --arm-signal
		proxy_pid=$NB_PID
		for _ in $(seq 100); do
			pport=$(sed -n 's/.*"proxy_ready","port":\([0-9]*\).*/\1/p' "$T/proxy.out")
			[ -n "$pport" ] && break
			sleep 0.05
		done
		to_addr=$NB_PEER4:$pport
	fi
	nb_bg "$from" "$T/send.out" env ${senv[@]+"${senv[@]}"} "$SECMIG" -v send \
		--to "$to_addr" --peer "$to" --on-no-converge extend --domain "$QB_NAME" --json \
		--state-dir "$T/$from" --name "$from" --backend qemu --io-timeout "$IO_TIMEOUT"
	send_pid=$NB_PID
	log=$T/send.out
	[ "$side" = dst ] && log=$T/recv-$to.out
	timeout 120 tail -n +1 -f "$log" 2>/dev/null | grep -m1 -q "$point: stalling" ||
		bad "$phase:$fault: never reached $point"
	case $fault in
	kill_src) kill -KILL "$send_pid" ;;
	kill_dst) kill -KILL "$QB_RECV_PID" ;;
	cut) kill -USR1 "$proxy_pid" ;;
	esac
	wait "$send_pid" 2>/dev/null
	rc=$?
	for _ in $(seq 300); do kill -0 "$QB_RECV_PID" 2>/dev/null || break; sleep 0.1; done
	kill -TERM "$QB_RECV_PID" 2>/dev/null
	wait "$QB_RECV_PID" 2>/dev/null
	[ -n "$proxy_pid" ] && nb_kill "$proxy_pid"
	echo "cell $phase:$fault ($from -> $to): send exit $rc"
	# After COMMIT the sender's copy waits, paused and silent, for resolve.
	if [ -e "$T/$from/qemu/$QB_NAME.commit" ]; then
		[ "$(qb_status "$from" | cut -d' ' -f1)" = running ] &&
			bad "$phase:$fault: the in-doubt copy runs on $from"
		nb_exec "$from" ip link show qt0 2>/dev/null | grep -q ',UP' &&
			bad "$phase:$fault: the in-doubt copy's tap is up on $from"
		resolve "$from" "$to"
	fi
	[ "$(expected "$phase" "$fault")" = to ] && where=$to || where=$from
	qb_expect_on "$where" "$phase:$fault" || fail=1
	[ "$where" = src ] && clean_on dst "$phase:$fault" || clean_on src "$phase:$fault"
	qb_wait_tick "$where" $((mark + 2)) 120 || bad "$phase:$fault: the guest does not tick on $where"
	qb_ticks "$where" | tail -1 | grep -q 'mem=ok disk=ok pcr=ok seal=ok' ||
		bad "$phase:$fault: self-check on $where: $(qb_ticks "$where" | tail -1)"
	echo "  VM on $where: $(qb_ticks "$where" | tail -1)"
	AT=$where
}

for c in $cells; do
	run_cell "${c%%:*}" "${c##*:}"
done
grep -a CORRUPT "$T/src/serial.log" "$T/dst/serial.log" && bad "the guest saw corruption"
[ "$(cat "$T/src/serial.log" "$T/dst/serial.log" | grep -a -c GUEST-UP)" = 1 ] ||
	bad "the guest rebooted"
[ "$fail" = 0 ] && echo "PASS"
exit $fail
