#!/bin/sh
# Runs inside the nested Xen's dom0 (busybox sh) after the Xen tools are up.
# Every check prints SMG-<NAME>-OK or SMG-FAIL <why>; the host greps them.
fail() { echo "SMG-FAIL $*"; }
# which phases run: live-abort live-migrate secmig-stop secmig-kill secmig-migrate
# (with balloon: the guest balloons down during secmig-migrate's pre-copy),
# boot-loop
phases=" $(cat /etc/xb-phases) "
want() { case $phases in *" $1 "*) return 0 ;; esac; return 1; }
clog=/var/log/xen/console
last_tick() { cat $clog/guest-domu*.log 2>/dev/null | sed -n 's/^domU tick \([0-9]*\) \([0-9.]*\).*/\1 \2/p' | sort -n | tail -1; }
# wait_guest NAME CMD...: run CMD every 2 s until it succeeds. Progress,
# not a clock, decides when to give up (this host is emulated and shared,
# and a domU boot took 26 to 136 s in one run): the domain is gone, crashed
# or shut down, or its CPU time stood still for $STALL seconds of checks.
STALL=120
guest_col() { xl list "$1" 2>/dev/null | awk -v c="$2" 'NR == 2 {print $c}'; }
wait_guest() {
	local name=$1 last= still=0 st cpu
	shift
	while ! "$@"; do
		st=$(guest_col "$name" 5)
		case $st in
		"" | ???s?? | ????c? | ?????d)
			echo "  wait: $name is ${st:-gone}"
			return 1
			;;
		esac
		cpu=$(guest_col "$name" 6)
		if [ "$cpu" = "$last" ]; then
			still=$((still + 2))
			if [ $still -ge $STALL ]; then
				echo "  wait: $name made no progress for ${STALL}s (cpu ${cpu}s, $st)"
				return 1
			fi
		else
			still=0 last=$cpu
		fi
		sleep 2
	done
}
tick_above() {
	local t
	t=$(last_tick)
	[ -n "$t" ] && [ "${t%% *}" -gt "$1" ]
}
# wait_tick N: until some domu log shows a tick above N
wait_tick() { wait_guest domu tick_above "$1"; }
domids() { xl list | awk '$1 ~ /^domu/ {print $1 "=" $2}' | tr '\n' ' '; }

secmig version >/tmp/version.out 2>&1 && grep -q '^backends:.*xen' /tmp/version.out &&
	echo "SMG-VERSION-OK" || { cat /tmp/version.out; fail "secmig version in dom0"; }

# test_xen_live without a domain: the backend refuses dom0 and a missing name
if [ -x /usr/bin/test_xen_live ]; then
	test_xen_live >/tmp/probe.out 2>&1 && echo "SMG-LIVE-PROBE-OK" ||
		{ sed 's/^/  /' /tmp/probe.out; fail "test_xen_live probe"; }
fi

# boot-loop (opt-in, for studying guest boots under TCG): create the domU
# $XB_BOOT_LOOPS times, wait for its first ticks, destroy it; print the
# console and Xen's log of every boot that did not reach a tick.
if want boot-loop; then
	ok=0 bad=0
	for n in $(seq 1 "$(cat /etc/xb-boot-loops 2>/dev/null || echo 6)"); do
		rm -f $clog/guest-domu*.log
		kill -HUP "$(cat /run/xenconsoled.pid)"
		xl dmesg -c >/dev/null 2>&1
		t0=$(cut -d' ' -f1 /proc/uptime)
		xl create /etc/xen/domu.cfg >/tmp/create.log 2>&1 || { tail -20 /tmp/create.log; fail "xl create"; }
		if wait_tick 1; then
			ok=$((ok + 1))
			echo "SMG-BOOT-LOOP $n ok after $(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN{print b-a}') s; $(xl list | awk '$1 == "domu" {print "state " $5}'); $(grep -h DOMU-UP $clog/guest-domu*.log | tail -1)"
		else
			bad=$((bad + 1))
			echo "SMG-BOOT-LOOP $n FAILED: $(xl list | awk '$1 == "domu" {print "state " $5}')"
			sed 's/^/  domu: /' $clog/guest-domu*.log 2>/dev/null | tail -80
			xl dmesg | tail -60 | sed 's/^/  xen: /'
		fi
		xl destroy domu 2>/dev/null
		sleep 1
	done
	echo "SMG-BOOT-LOOP-DONE ok=$ok failed=$bad"
fi

# The domU boots once. It used to crash now and then while booting (an
# XRSTOR #GP in the kernel, then #UD on an AVX instruction in busybox: the
# emulated CPU's AVX/XSAVE state under nested SVM, see docs/xen.md); the
# bed's -cpu leaves XSAVE out. A crash fails, with the guest's console and
# Xen's log as evidence.
xl create /etc/xen/domu.cfg >/tmp/create.log 2>&1 || { tail -20 /tmp/create.log; fail "xl create"; }
if wait_tick 2; then
	echo "SMG-DOMU-TICKING domid=$(xl domid domu) last=$(last_tick) $(grep -h DOMU-UP $clog/guest-domu*.log | tail -1)"
else
	xl list
	sed 's/^/  domu: /' $clog/guest-domu*.log 2>/dev/null | tail -60
	xl dmesg | tail -30 | sed 's/^/  xen: /'
	fail "domU not ticking"
	exit 1
fi
d1=$(xl domid domu)

if [ -x /usr/bin/test_xen_live ] && want live-abort; then
	# 1. failure injection: the receiver goes away mid-pre-copy
	test_xen_live abort domu >/tmp/abort.out 2>&1
	sed 's/^/  /' /tmp/abort.out
	t=$(last_tick)
	if grep -q 'SMG-LIVE abort rc=0' /tmp/abort.out && wait_tick "${t%% *}" &&
		[ "$(xl domid domu)" = "$d1" ] && ! xl list | grep -q incoming; then
		echo "SMG-ABORT-OK guest runs on d$d1, tick $(last_tick); domains: $(domids)"
	else
		fail "after abort: $(domids) last tick $(last_tick)"
	fi
fi
if [ -x /usr/bin/test_xen_live ] && want live-migrate; then
	# 2. same-host live migration through the backend
	test_xen_live migrate domu >/tmp/migrate.out 2>&1
	sed 's/^/  /' /tmp/migrate.out
	grep -q 'SMG-LIVE migrate rc=0' /tmp/migrate.out || fail "test_xen_live migrate"
	d2=$(xl domid domu 2>/dev/null)
	n=$(xl list | grep -c '^domu')
	# xenconsoled names a console log after the domain's name when it
	# appears: the incoming copy logs to guest-domu--incoming.log
	inlog=$clog/guest-domu--incoming.log
	grep -q 'SMG-LIVE migrate rc=0' /tmp/migrate.out && wait_guest domu grep -q '^domU tick' $inlog
	src=$(sed -n 's/^domU tick \([0-9]*\) \([0-9.]*\).*/\1 \2/p' $clog/guest-domu.log | tail -1)
	dst=$(sed -n 's/^domU tick \([0-9]*\) \([0-9.]*\).*/\1 \2/p' $inlog 2>/dev/null | head -1)
	if [ -n "$d2" ] && [ "$d2" != "$d1" ] && [ "$n" = 1 ] && [ -n "$dst" ]; then
		echo "SMG-MIGRATE-OK d$d1 -> d$d2; last tick on d$d1: $src; first on d$d2: $dst; domains: $(domids)"
		# the guest's own counter and uptime go on: one more tick, later;
		# a rebooted guest would restart at tick 1 with a small uptime
		awk -v s="$src" -v d="$dst" 'BEGIN { split(s, a, " "); split(d, b, " ");
			exit !(b[1] == a[1] + 1 && b[2] > a[2]) }' &&
			echo "SMG-COUNTER-CONTINUES ${src%% *} -> ${dst%% *}" ||
			fail "counter did not continue: d$d1 ended at '$src', d$d2 began at '$dst'"
		[ "$(cat $clog/guest-domu*.log | grep -c DOMU-UP)" = 1 ] || fail "the guest booted again"
		xl list | grep -q -- '--migratedaway\|--incoming' && fail "a renamed copy is left: $(domids)"
	else
		fail "migrate: domu=$d2 (was $d1), $n copies, first tick on the new domain '$dst'"
		xl list
	fi
	ls $clog; tail -3 $clog/guest-domu*.log
fi

# 3. secmig send/recv with the xen backend, over the secure channel on
# loopback, software-mode identities enrolled at each other.
mkdir -p /tmp/s /tmp/d
secmig keygen /tmp/s/host.key >/tmp/s.pub && secmig keygen /tmp/d/host.key >/tmp/d.pub ||
	fail "keygen"
echo "dst $(cat /tmp/d.pub)" >/tmp/s/peers
echo "src $(cat /tmp/s.pub)" >/tmp/d/peers
chmod 600 /tmp/s/peers /tmp/d/peers
# The destination's own definition of domu (docs/hostdef.md): its kernel,
# ramdisk and command line are dom0's files, whatever the sender's config says.
# Memory: a xen plan's memory is the guest's physmap span (p2m size: 4080 MiB
# for this 128 MiB domU), not its populated frames: the cap allows 8G.
cat >/tmp/d/defs <<'DEFS'
storage /tmp/d
vm domu
  from src
  memory 8G
  type pvh
  kernel /boot/vmlinuz
  ramdisk /boot/domU-initrd.gz
  cmdline console=hvc0 quiet
DEFS
chmod 600 /tmp/d/defs
# start_recv: a one-shot receiver on an ephemeral port -> $rpid, $port
# Under emulation libxc's restore can stop reading for minutes while it
# populates frames (one emulated dom0 vCPU): the receiver does not count
# its own busy time as the sender's silence (docs/protocol.md, Liveness),
# but the sender cannot tell a busy receiver from a dead one before its
# idle limit, so both sides get 5 minutes instead of 60 s.
IO_TIMEOUT=300000
start_recv() {
	secmig -v recv --listen 127.0.0.1:0 --once --json --state-dir /tmp/d --name dst \
		--backend xen --insecure-software-mode --defs /tmp/d/defs \
		--io-timeout $IO_TIMEOUT >/tmp/recv.out 2>/tmp/recv.err &
	rpid=$!
	port=
	# until it prints its port, for as long as it runs
	while kill -0 $rpid 2>/dev/null; do
		port=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' /tmp/recv.out | head -1)
		[ -n "$port" ] && return 0
		sleep 0.2
	done
	return 1
}
send() {
	secmig -v send --to 127.0.0.1:$port --peer dst --on-no-converge extend --domain domu \
		--backend xen --state-dir /tmp/s \
		--name src --json --io-timeout $IO_TIMEOUT "$@" >/tmp/send.out 2>/tmp/send.err
}

# 3s. the sender stopped in stop-and-copy: --rule stop-and-copy suspends
# the guest at once, the sender stalls right after (SMG_FI), nothing of
# the guest has been sent. SIGTERM: exit 13, the guest resumes here.
# SIGKILL: the guest stays suspended; the pause record written before the
# suspend lets `secmig resolve` find it and resume it (before, resolve said
# there was nothing in doubt and the guest stayed suspended for good).
# stopped_send: a sender stalled after the suspend -> $spid, 0 once there
# (secmig itself in the background, not the send function: $! must be
# the sender, not a subshell that dies of the signal in its place)
stopped_send() {
	SMG_FI=src_after_pause SMG_FI_STALL_MS=600000 secmig -v send --to 127.0.0.1:$port \
		--peer dst --rule stop-and-copy --max-downtime 20000 --domain domu \
		--backend xen --state-dir /tmp/s --name src --json --io-timeout $IO_TIMEOUT \
		>/tmp/send.out 2>/tmp/send.err &
	spid=$!
	while kill -0 $spid 2>/dev/null && ! grep -q 'src_after_pause: stalling' /tmp/send.err; do
		sleep 0.5
	done
	grep -q 'src_after_pause: stalling' /tmp/send.err
}
if ! want secmig-stop; then
	:
elif start_recv && stopped_send; then
	d1=$(xl domid domu)
	t=$(last_tick)
	st=$(guest_col domu 5)
	kill -TERM $spid
	wait $spid; src=$?
	wait $rpid; rrc=$?
	echo "  SIGTERM in stop-and-copy (guest was $st): send exit $src, recv exit $rrc"
	tail -1 /tmp/send.out | sed 's/^/    /'
	if [ $src = 13 ] && [ $rrc = 13 ] && grep -q '"outcome":"cancelled"' /tmp/send.out &&
		[ "$(xl domid domu)" = "$d1" ] && wait_tick "${t%% *}"; then
		echo "SMG-SECMIG-SIGTERM-OK send exit $src, recv exit $rrc; guest was $st, runs on d$d1 again, tick $(last_tick)"
	else
		fail "SIGTERM in stop-and-copy: send $src recv $rrc, $(domids), tick $(last_tick)"
	fi
	if start_recv && stopped_send; then
		t=$(last_tick)
		st=$(guest_col domu 5)
		kill -9 $spid
		wait $spid 2>/dev/null
		kill $rpid 2>/dev/null
		wait $rpid 2>/dev/null
		echo "  SIGKILL in stop-and-copy: guest $st; pause record: $(xenstore-list /tool/secmig-paused 2>/dev/null | tr '\n' ' ')"
		secmig -v resolve --domain domu --backend xen --state-dir /tmp/s --name src \
			>/tmp/resolve.out 2>/tmp/resolve.err
		res=$?
		sed 's/^/    /' /tmp/resolve.out; grep '^secmig:' /tmp/resolve.err | tail -4 | sed 's/^/    resolve: /'
		if [ $res = 0 ] && grep -q 'resumed here' /tmp/resolve.out &&
			[ "$(xl domid domu)" = "$d1" ] && wait_tick "${t%% *}" &&
			[ -z "$(xenstore-list /tool/secmig-paused 2>/dev/null)" ]; then
			echo "SMG-SECMIG-SIGKILL-RESOLVE-OK resolve exit $res; guest ($st when the sender died) runs on d$d1 again, tick $(last_tick)"
		else
			fail "SIGKILL in stop-and-copy: resolve exit $res, $(domids), state $(guest_col domu 5), tick $(last_tick)"
		fi
	else
		fail "SIGKILL row: no stalled sender: $(tail -3 /tmp/send.err)"
	fi
else
	fail "stop-and-copy rows: recv or stalled send: $(tail -3 /tmp/send.err) $(tail -3 /tmp/recv.err)"
fi

# 3a. failure injection: kill the receiver mid-pre-copy
if ! want secmig-kill; then
	:
elif start_recv; then
	d1=$(xl domid domu)
	t=$(last_tick)
	send & spid=$!
	killed=0
	# kill it mid-round-0, once pages flow: the incoming copy holds 16 MiB
	# (round 0 is the whole guest at ~0.3-1 MB/s under TCG; waiting for
	# its end cost minutes of CI and tested nothing more)
	while kill -0 $spid 2>/dev/null; do
		mem=$(xl list domu--incoming 2>/dev/null | awk 'NR == 2 {print $3}')
		if [ "${mem:-0}" -ge 16 ] && grep -q '"phase":"precopy"' /tmp/send.out; then
			kill -9 $rpid; killed=1; break
		fi
		sleep 0.5
	done
	echo "  receiver killed=$killed at $(date +%s), incoming copy at ${mem:-0} MiB ($(grep -c '"event":"round"' /tmp/send.out) rounds done)"
	wait $spid; src=$?
	wait $rpid 2>/dev/null
	echo "  send exit $src after receiver kill=$killed; send events:"
	grep '"event":"round"' /tmp/send.out | sed 's/^/    /'
	tail -2 /tmp/send.out | sed 's/^/    /'; grep '^secmig:' /tmp/send.err | tail -8 | sed 's/^/    send: /'
	grep -E '^(secmig|libxl|xc):' /tmp/recv.err | grep -v -E '^(libxl|xc)[^ ]*: debug' | tail -8 | sed 's/^/    recv: /'
	# the dead receiver's half-built copy may stay until the next receiver
	# clears it, but it must never have run: paused ("p" in xl's state)
	stale=$(xl list | awk '$1 == "domu--incoming" && $5 !~ /p/ {print $2}')
	if [ $killed = 1 ] && [ $src != 0 ] && [ $src != 9 ] && wait_tick "${t%% *}" &&
		[ "$(xl domid domu)" = "$d1" ] && [ -z "$stale" ]; then
		echo "SMG-SECMIG-KILL-OK send exit $src; guest runs on d$d1, tick $(last_tick); domains: $(domids)"
	else
		fail "receiver kill: killed=$killed send exit $src, $(domids), tick $(last_tick), unpaused incoming '$stale'"
		xl list
	fi
else
	fail "recv did not start: $(cat /tmp/recv.err)"
fi

# 3b. the migration itself
# ticks $file $skip: "N UPTIME" of the tick lines after the first $skip lines
ticks() { tail -n +$(($2 + 1)) "$1" 2>/dev/null | sed -n 's/^domU tick \([0-9]*\) \([0-9.]*\).*/\1 \2/p'; }
lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }
if ! want secmig-migrate; then
	:
elif start_recv; then
	d1=$(xl domid domu)
	# xenconsoled names each log after the domain's name when it opens it;
	# SIGHUP reopens them, so the source (named domu now) logs to
	# guest-domu.log and the incoming copy to guest-domu--incoming.log
	kill -HUP "$(cat /run/xenconsoled.pid)"
	sleep 2
	slog=$clog/guest-domu.log inlog=$clog/guest-domu--incoming.log
	s0=$(lines $slog) i0=$(lines $inlog)
	ups0=$(cat $clog/guest-domu*.log | grep -c DOMU-UP)
	# QEMU TCG moves ~1 MB/s through the secure channel here: a 300 ms
	# budget is out of reach, so allow 20 s and no throttling.
	if want balloon; then
		# the guest gives back 16 MiB while round 0 runs: the sweeps must
		# see the frames go, the destination must give them back too
		send --max-downtime 20000 --no-auto-converge & spid=$!
		while kill -0 $spid 2>/dev/null && ! grep -q '"phase":"precopy"' /tmp/send.out; do
			sleep 0.5
		done
		xl mem-set domu 112m && echo "  balloon: domu target 112 MiB during pre-copy"
		wait $spid; src=$?
	else
		send --max-downtime 20000 --no-auto-converge; src=$?
	fi
	wait $rpid; rrc=$?
	echo "  send exit $src, recv exit $rrc"
	grep '"event":"round"' /tmp/send.out | sed 's/^/    /'
	tail -3 /tmp/send.out | sed 's/^/    /'; grep '^secmig:' /tmp/send.err | tail -20 | sed 's/^/    send: /'
	tail -3 /tmp/recv.out | sed 's/^/    /'; grep -E '^(secmig|libxl|xc):' /tmp/recv.err | grep -v -E '^(libxl|xc)[^ ]*: debug' | tail -20 | sed 's/^/    recv: /'
	d2=$(xl domid domu 2>/dev/null)
	n=$(xl list | grep -c '^domu')
	has_ticks() { [ -n "$(ticks $inlog $i0)" ]; }
	# only a migrated guest ticks in the incoming copy's log
	[ $src = 0 ] && [ $rrc = 0 ] && wait_guest domu has_ticks
	last=$(ticks $slog $s0 | tail -1)
	first=$(ticks $inlog $i0 | head -1)
	if [ $src = 0 ] && [ $rrc = 0 ] && [ -n "$d2" ] && [ "$d2" != "$d1" ] && [ "$n" = 1 ] &&
		[ -n "$first" ]; then
		echo "SMG-SECMIG-MIGRATE-OK d$d1 -> d$d2 by secmig send --backend xen; last tick on d$d1: $last; first on d$d2: $first; domains: $(domids)"
		# the migrate phase's figures (rounds, pages, bytes, times) for the log
		echo "SMG-SECMIG-RESULT $(grep '"event":"result"' /tmp/send.out | tail -1)"
		awk -v s="$last" -v d="$first" 'BEGIN { split(s, a, " "); split(d, b, " ");
			exit !(b[1] == a[1] + 1 && b[2] > a[2]) }' &&
			echo "SMG-SECMIG-COUNTER-CONTINUES ${last%% *} -> ${first%% *}" ||
			fail "secmig: counter did not continue: d$d1 ended at '$last', d$d2 began at '$first'"
		xl list | grep -q -- '--migratedaway\|--incoming' && fail "a renamed copy is left: $(domids)"
		# round 0 carried the populated frames, not the 4 GiB physmap
		pop=$(sed -n 's/.*: \([0-9]*\) of \([0-9]*\) frames populated.*/\1 \2/p' /tmp/send.err | head -1)
		r0=$(grep '"event":"round"' /tmp/send.out | head -1 | sed -n 's/.*"pages":\([0-9]*\).*/\1/p')
		if [ -n "$pop" ] && [ -n "$r0" ] && [ "$r0" -le "${pop%% *}" ] &&
			[ "${pop%% *}" -lt "${pop##* }" ]; then
			echo "SMG-SECMIG-SPARSE-OK round 0: $r0 frames; populated ${pop%% *} of ${pop##* }"
		else
			fail "round 0 sent '$r0' frames; populated (of the physmap): '$pop'"
		fi
		if want balloon; then
			# the source saw frames go; the destination ends with exactly
			# the frames the source had when it stopped, as Xen counts them
			went=$(sed -n 's/.* appeared, \([0-9]*\) went;.*/\1/p' /tmp/send.err | tail -1)
			spop=$(sed -n 's/.* stopped: .*(Xen counts \([0-9]*\) pages).*/\1/p' /tmp/send.err | tail -1)
			dpop=$(sed -n 's/.* (paused): .*(Xen counts \([0-9]*\) pages;.*/\1/p' /tmp/recv.err | tail -1)
			back=$(sed -n 's/.*, \([0-9]*\) given back).*/\1/p' /tmp/recv.err | tail -1)
			if [ "${went:-0}" -gt 0 ] && [ "${spop:-0}" -gt 0 ] && [ "$spop" = "$dpop" ]; then
				echo "SMG-SECMIG-BALLOON-OK $went frames went on the source; Xen counts $spop pages there when stopped and $dpop on the destination ($back given back)"
			else
				fail "balloon: source saw '$went' frames go, Xen counts '$spop' pages there and '$dpop' on the destination ('$back' given back)"
			fi
		fi
	else
		fail "secmig migrate: send $src recv $rrc, domu=$d2 (was $d1), $n copies, first tick on the new domain '$first'"
		xl list
	fi
	[ "$(cat $clog/guest-domu*.log | grep -c DOMU-UP)" = "$ups0" ] || fail "the guest booted again"
	ls $clog
else
	fail "recv did not start: $(cat /tmp/recv.err)"
fi
xl list
xl destroy domu
