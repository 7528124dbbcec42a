#!/bin/sh
# Runs inside the nested Xen's dom0 (busybox sh) after the Xen tools are up.
# Every check prints SMG-<NAME>-OK or SMG-FAIL <why>; the host greps them.
fail() { echo "SMG-FAIL $*"; }
# which phases run: live-abort live-migrate secmig-kill secmig-migrate
phases=" $(cat /etc/xb-phases) "
want() { case $phases in *" $1 "*) return 0 ;; esac; return 1; }
clog=/var/log/xen/console
last_tick() { cat $clog/guest-domu*.log 2>/dev/null | sed -n 's/^domU tick \([0-9]*\) \([0-9.]*\).*/\1 \2/p' | sort -n | tail -1; }
# wait_tick N: until some domu log shows a tick above N (60 s)
wait_tick() {
	for i in $(seq 1 30); do
		t=$(last_tick); [ -n "$t" ] && [ "${t%% *}" -gt "$1" ] && return 0
		sleep 2
	done
	return 1
}
domids() { xl list | awk '$1 ~ /^domu/ {print $1 "=" $2}' | tr '\n' ' '; }

secmig version >/tmp/version.out 2>&1 && grep -q '^backends:.*xen' /tmp/version.out &&
	echo "SMG-VERSION-OK" || { cat /tmp/version.out; fail "secmig version in dom0"; }

# The guest kernel occasionally crashes while booting under TCG (seen once
# in CI as state ---sc- before any tick, with secmig not yet involved): boot
# it once more, logged, before any secmig step; a second crash fails.
ticking=no
for attempt in 1 2; do
	xl create /etc/xen/domu.cfg >/tmp/create.log 2>&1 || { tail -20 /tmp/create.log; fail "xl create"; }
	wait_tick 2 && { ticking=yes; break; }
	[ $attempt = 2 ] && break
	xl list
	tail -5 $clog/guest-domu*.log 2>/dev/null
	echo "SMG-DOMU-BOOT-RETRY (guest did not tick; recreating it)"
	xl destroy domu 2>/dev/null
done
if [ $ticking = yes ]; then
	echo "SMG-DOMU-TICKING domid=$(xl domid domu) last=$(last_tick)"
else
	xl list; fail "domU not ticking"; exit 1
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
	for i in $(seq 1 30); do grep -q '^domU tick' $inlog 2>/dev/null && break; sleep 2; done
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
cat >/tmp/d/defs <<'DEFS'
storage /tmp/d
vm domu
  from src
  memory 256M
  type pvh
  kernel /boot/vmlinuz
  ramdisk /boot/domU-initrd.gz
  cmdline console=hvc0 quiet
DEFS
chmod 600 /tmp/d/defs
# start_recv: a one-shot receiver on an ephemeral port -> $rpid, $port
start_recv() {
	secmig -v recv --listen 127.0.0.1:0 --once --json --state-dir /tmp/d --name dst \
		--backend xen --insecure-software-mode --defs /tmp/d/defs \
		>/tmp/recv.out 2>/tmp/recv.err &
	rpid=$!
	port=
	for i in $(seq 1 50); do
		port=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' /tmp/recv.out | head -1)
		[ -n "$port" ] && return 0
		sleep 0.2
	done
	return 1
}
send() {
	secmig -v send --to 127.0.0.1:$port --domain domu --backend xen --state-dir /tmp/s \
		--name src --json "$@" >/tmp/send.out 2>/tmp/send.err
}

# 3a. failure injection: kill the receiver mid-pre-copy
if ! want secmig-kill; then
	:
elif start_recv; then
	d1=$(xl domid domu)
	t=$(last_tick)
	send & spid=$!
	killed=0
	# round 0 copies the whole guest at ~1 MB/s under TCG: wait for its
	# end (the first round event), then kill while round 1 is under way
	for i in $(seq 1 600); do
		if grep -q '"event":"round"' /tmp/send.out 2>/dev/null; then
			kill -9 $rpid; killed=1; break
		fi
		kill -0 $spid 2>/dev/null || break
		sleep 0.5
	done
	echo "  receiver killed=$killed at $(date +%s) ($(grep -c '"event":"round"' /tmp/send.out) rounds done)"
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
	send --max-downtime 20000 --no-auto-converge; src=$?
	wait $rpid; rrc=$?
	echo "  send exit $src, recv exit $rrc"
	grep '"event":"round"' /tmp/send.out | sed 's/^/    /'
	tail -3 /tmp/send.out | sed 's/^/    /'; grep '^secmig:' /tmp/send.err | tail -20 | sed 's/^/    send: /'
	tail -3 /tmp/recv.out | sed 's/^/    /'; grep -E '^(secmig|libxl|xc):' /tmp/recv.err | grep -v -E '^(libxl|xc)[^ ]*: debug' | tail -20 | sed 's/^/    recv: /'
	d2=$(xl domid domu 2>/dev/null)
	n=$(xl list | grep -c '^domu')
	for i in $(seq 1 30); do [ -n "$(ticks $inlog $i0)" ] && break; sleep 2; done
	last=$(ticks $slog $s0 | tail -1)
	first=$(ticks $inlog $i0 | head -1)
	if [ $src = 0 ] && [ $rrc = 0 ] && [ -n "$d2" ] && [ "$d2" != "$d1" ] && [ "$n" = 1 ] &&
		[ -n "$first" ]; then
		echo "SMG-SECMIG-MIGRATE-OK d$d1 -> d$d2 by secmig send --backend xen; last tick on d$d1: $last; first on d$d2: $first; domains: $(domids)"
		awk -v s="$last" -v d="$first" 'BEGIN { split(s, a, " "); split(d, b, " ");
			exit !(b[1] == a[1] + 1 && b[2] > a[2]) }' &&
			echo "SMG-SECMIG-COUNTER-CONTINUES ${last%% *} -> ${first%% *}" ||
			fail "secmig: counter did not continue: d$d1 ended at '$last', d$d2 began at '$first'"
		xl list | grep -q -- '--migratedaway\|--incoming' && fail "a renamed copy is left: $(domids)"
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
