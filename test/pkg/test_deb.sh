#!/usr/bin/env bash
# The Debian package end to end on this (throwaway CI) machine: build it with
# the documented command (scripts/package.sh), check its control fields,
# install it with dpkg -i, run the installed binary on the installed config
# skeleton, check the installed files, units and man pages; then the issue's
# "done when": two hosts (network namespaces of test/net/netbed.sh, each with
# its own /etc/secmig and /var/lib/secmig bind-mounted from the installed
# ones) set up by docs/operating.md's "First start" steps, their services
# started by the installed units' ExecStart command lines (systemd is not
# PID 1 here), a precheck and a migration between them. Then remove and
# purge it. Refuses to run when a secmig package it did not install is there.
set -u
command -v dpkg-deb >/dev/null || { echo "SKIP: dpkg-deb missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "FAIL: dpkg -i needs root"; exit 1; }
T=$(mktemp -d /tmp/smg-deb.XXXXXX)
installed=0
state_dir_was_there=0
[ -e /var/lib/secmig ] && state_dir_was_there=1
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# dpkg with a retry while apt or dpkg elsewhere holds the lock
dpkg_retry() {
	local i out
	for i in $(seq 60); do
		if out=$(dpkg "$@" 2>&1); then
			return 0
		fi
		grep -q "lock" <<<"$out" || { echo "$out"; return 1; }
		sleep 2
	done
	echo "$out"
	return 1
}
cleanup() {
	declare -F nb_down >/dev/null && nb_down
	if [ $installed = 1 ]; then
		dpkg_retry -P secmig >/dev/null || echo "FAIL: could not purge secmig"
		[ $state_dir_was_there = 1 ] || rm -rf /var/lib/secmig
	fi
	rm -rf "$T"
}
trap cleanup EXIT

# One run at a time on this machine (several worktrees may carry this test).
exec 9>/var/lock/secmig-test-deb.lock
flock 9
st=$(dpkg-query -W -f='${db:Status-Status}' secmig 2>/dev/null)
if [ -n "$st" ] && [ "$st" != not-installed ]; then
	echo "FAIL: a secmig package is already on this machine (status $st); not touching it"
	exit 1
fi
[ -e /usr/bin/secmig ] && { echo "FAIL: /usr/bin/secmig exists and is not from a package"; exit 1; }

echo "== build: scripts/package.sh"
deb=$(bash "$SMG_SRC/scripts/package.sh" "$T/build" 2>"$T/build.err" | tail -n 1)
[ -f "$deb" ] || { tail -n 20 "$T/build.err"; echo "FAIL: no package built"; exit 1; }
echo "$(basename "$deb"): $(stat -c %s "$deb") bytes"

echo "== control"
dpkg-deb -f "$deb" Package Version Depends Recommends Suggests
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libsodium23 libprotobuf-c1 libtss2-esys libtss2-tctildr0 libssl3 libsystemd0 libc6; do
	grep -q "$lib" <<<"$depends" || bad "Depends lacks $lib"
done
grep -q swtpm <<<"$(dpkg-deb -f "$deb" Recommends)" || bad "Recommends lacks swtpm"
for f in policy hostdefs peers secmig.conf; do
	dpkg-deb -I "$deb" conffiles | grep -qx "/etc/secmig/$f" || bad "/etc/secmig/$f is not a conffile"
done

echo "== dpkg -i"
installed=1
dpkg_retry -i "$deb" || { echo "FAIL: dpkg -i"; exit 1; }
[ "$(dpkg-query -W -f='${db:Status-Status}' secmig)" = installed ] || bad "not installed after dpkg -i"

want=(/usr/bin/secmig /lib/systemd/system/secmig-recv.service
	/lib/systemd/system/secmig-sim-host.service /lib/systemd/system/secmig-disk.service
	/usr/share/bash-completion/completions/secmig /etc/secmig/policy /etc/secmig/peers
	/etc/secmig/hostdefs
	/etc/secmig/secmig.conf /usr/share/man/man1/secmig.1.gz /usr/share/man/man5/secmig.conf.5.gz
	/usr/share/man/man1/secmig-recv.1.gz /usr/share/man/man1/secmig-send.1.gz
	/usr/share/man/man1/secmig-init.1.gz /usr/share/man/man1/secmig-precheck.1.gz
	/usr/share/doc/secmig/operating.md)
list=$(dpkg -L secmig)
for f in "${want[@]}"; do
	grep -qx "$f" <<<"$list" || bad "dpkg -L lacks $f"
	[ -e "$f" ] || bad "$f not on disk"
done
echo "installed: $(grep -c . <<<"$list") paths"
[ "$(stat -c %a /var/lib/secmig)" = 700 ] || bad "/var/lib/secmig is not 0700"

echo "== run the installed binary"
ver=$(/usr/bin/secmig version) || bad "secmig version failed"
head -n 2 <<<"$ver"
grep -q "^secmig $(dpkg-deb -f "$deb" Version) " <<<"$ver" || bad "version differs from the package's"
/usr/bin/secmig config check /etc/secmig/policy || bad "config check on the installed policy skeleton"
/usr/bin/secmig config check --defs /etc/secmig/hostdefs || bad "config check on the installed hostdefs skeleton"
for u in recv disk sim-host; do
	grep -q -- "^ExecStart=/usr/bin/secmig --config=/etc/secmig/secmig.conf " \
		"/lib/systemd/system/secmig-$u.service" || bad "secmig-$u.service does not read /etc/secmig/secmig.conf"
done
(cd / && secmig --help >/dev/null) || bad "secmig not on PATH"
[ "$(man -w secmig-recv)" = /usr/share/man/man1/secmig-recv.1.gz ] || bad "man secmig-recv not found"
bash -c 'source /usr/share/bash-completion/completions/secmig' || bad "installed completion does not source"
v=$(systemd-analyze verify /lib/systemd/system/secmig-*.service 2>&1) || bad "verify rc"
[ -z "$v" ] || bad "systemd-analyze verify on the installed units: $v"

e2e() { . "$SMG_SRC/test/pkg/deb_e2e.sh"; }
if ip netns add "smgdeb$$-probe" 2>/dev/null; then
	ip netns del "smgdeb$$-probe"
	e2e
else
	echo "== e2e: ip netns does not work here; not run"
fi

echo "== dpkg -r"
dpkg_retry -r secmig || bad "dpkg -r"
[ -e /usr/bin/secmig ] && bad "/usr/bin/secmig left after dpkg -r"
[ -e /etc/secmig/policy ] || bad "dpkg -r removed a conffile (only purge should)"
dpkg_retry -P secmig || bad "dpkg -P"
installed=0
[ $state_dir_was_there = 1 ] || rm -rf /var/lib/secmig
[ -e /etc/secmig ] && bad "/etc/secmig left after purge"
st=$(dpkg-query -W -f='${db:Status-Status}' secmig 2>/dev/null)
[ -z "$st" ] || [ "$st" = not-installed ] || bad "status after purge: $st"
exit $fail
