#!/bin/sh
# Runs inside the nested Xen's dom0 (busybox sh) after the Xen tools are up.
# Every check prints SMG-<NAME>-OK or SMG-FAIL <why>; the host greps them.
fail() { echo "SMG-FAIL $*"; }
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

xl create /etc/xen/domu.cfg >/tmp/create.log 2>&1 || { tail -20 /tmp/create.log; fail "xl create"; }
if wait_tick 2; then
	echo "SMG-DOMU-TICKING domid=$(xl domid domu) last=$(last_tick)"
else
	xl list; fail "domU not ticking"; exit 1
fi
d1=$(xl domid domu)

if [ -x /usr/bin/test_xen_live ]; then
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
	# 2. same-host live migration through the backend
	before=$(last_tick)
	test_xen_live migrate domu >/tmp/migrate.out 2>&1
	sed 's/^/  /' /tmp/migrate.out
	grep -q 'SMG-LIVE migrate rc=0' /tmp/migrate.out || fail "test_xen_live migrate"
	d2=$(xl domid domu 2>/dev/null)
	n=$(xl list | grep -c '^domu')
	if [ -n "$d2" ] && [ "$d2" != "$d1" ] && [ "$n" = 1 ] && wait_tick "${before%% *}"; then
		after=$(last_tick)
		echo "SMG-MIGRATE-OK d$d1 -> d$d2; tick/uptime before: $before, after: $after; domains: $(domids)"
		# a rebooted guest would restart at tick 1 with a small uptime
		awk -v b="${before#* }" -v a="${after#* }" 'BEGIN { exit !(a > b) }' &&
			echo "SMG-COUNTER-CONTINUES" || fail "uptime went back: $before -> $after"
		grep -c DOMU-UP $clog/guest-domu*.log | sed 's/^/  DOMU-UP count: /'
	else
		fail "migrate: domu=$d2 (was $d1), $n copies, last tick $(last_tick) (before $before)"
		xl list
	fi
	ls $clog; tail -3 $clog/guest-domu*.log
fi
xl list
xl destroy domu
