#!/bin/sh
# Runs inside the nested Xen's dom0 (busybox sh) after the Xen tools are up.
# Every check prints SMG-<NAME>-OK or SMG-FAIL <why>; the host greps them.
fail() { echo "SMG-FAIL $*"; }

secmig version >/tmp/version.out 2>&1 && grep -q '^backends:.*xen' /tmp/version.out &&
	echo "SMG-VERSION-OK" || { cat /tmp/version.out; fail "secmig version in dom0"; }

xl create /etc/xen/domu.cfg >/tmp/create.log 2>&1 || { tail -20 /tmp/create.log; fail "xl create"; }
ticking=0
for i in $(seq 1 90); do
	if grep -q 'domU tick 3' /var/log/xen/console/guest-domu.log 2>/dev/null; then ticking=1; break; fi
	sleep 2
done
[ $ticking = 1 ] && echo "SMG-DOMU-TICKING domid=$(xl domid domu)" || { xl list; fail "domU not ticking"; }

if [ -x /usr/bin/test_xen_live ]; then
	test_xen_live domu && echo "SMG-LIVE-OK" || fail "test_xen_live rc=$?"
fi
xl list
xl destroy domu
