# Sourced by test_deb.sh with the package installed: docs/operating.md's
# "First start" on two hosts, then a precheck and a migration between them.
# Each host is a network namespace of test/net/netbed.sh (src 10.77.0.1,
# dst 10.77.0.2) whose commands see their own /etc/secmig and
# /var/lib/secmig: copies of what dpkg -i installed, bind-mounted in a
# private mount namespace, so both hosts use the installed paths exactly as
# the units do. The services run the installed units' ExecStart lines.
# Uses bad(), $T and $SMG_SRC from test_deb.sh; every process it starts is
# in NB_PIDS, which nb_down (test_deb.sh's cleanup) ends.
echo "== e2e: two hosts from the package, docs/operating.md step by step"
e2e_t0=$(date +%s)
NB_P=smgdeb$$
. "$SMG_SRC/test/net/netbed.sh"
NB_TMP=$(mktemp -d "/tmp/$NB_P.XXXXXX")
nb_up || { bad "e2e: the two-host bed did not come up"; return; }

for h in src dst; do
	mkdir -p "$T/$h/etc" "$T/$h/state"
	cp -a /etc/secmig/. "$T/$h/etc/"
done

# on HOST CMD...: CMD on that host, as its operator would run it there (a
# login shell there has no SECMIG_CONFIG; ctest sets it empty: none).
ON_SH='mount --bind "$0/etc" /etc/secmig && mount --bind "$0/state" /var/lib/secmig && exec "$@"'
on() {
	local h=$1
	shift
	env -u SECMIG_CONFIG -u SECMIG_STATE_DIR nsenter --net="/run/netns/$(nb_ns "$h")" \
		unshare -m --propagation private sh -c "$ON_SH" "$T/$h" "$@"
}
# unit HOST NAME: that unit's ExecStart there, in the background (not
# through the function: a backgrounded function is a subshell, whose PID
# is not the service's)
unit() {
	local cmd
	cmd=$(sed -n 's/^ExecStart=//p' "/lib/systemd/system/secmig-$2.service")
	# shellcheck disable=SC2086 # ExecStart is split into words, as systemd does
	env -u SECMIG_CONFIG -u SECMIG_STATE_DIR nsenter --net="/run/netns/$(nb_ns "$1")" \
		unshare -m --propagation private sh -c "$ON_SH" "$T/$1" $cmd >"$T/$1-$2.log" 2>&1 9>&- &
	NB_PIDS+=($!)
}
wait_for() { # file pattern: hang guard only
	for _ in $(seq 200); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# 1. secmig init on each host: key, state directory, the shipped files personalised
for h in src dst; do
	on "$h" secmig init --name "$h" --mode software >"$T/$h-init.out" 2>&1 ||
		{ bad "e2e: secmig init on $h: $(cat "$T/$h-init.out")"; return; }
done
grep -q "policy .*personalised" "$T/dst-init.out" || bad "e2e: init did not personalise the shipped policy"
[ "$(stat -c %a "$T/dst/state")" = 700 ] || bad "e2e: dst's state directory is not 0700"
# 2. enrol each other: the peers file, and the policy's peer blocks
on src sh -c "echo 'dst $(cat "$T/dst/state/host.key.pub") addr=$NB_DST4' >>/etc/secmig/peers"
on dst sh -c "echo 'src $(cat "$T/src/state/host.key.pub")' >>/etc/secmig/peers"
on src sh -c 'printf "peer dst\n" >>/etc/secmig/policy'
on dst sh -c 'printf "peer src\n  send vm*\n" >>/etc/secmig/policy'
# 3. what dst may receive
on dst sh -c 'printf "vm vm*\n  from src\n  memory 64M\n  vcpus 2\n" >>/etc/secmig/hostdefs'
# 4. check, 5. start the services (sim host, disk service, receiver)
for h in src dst; do
	on "$h" secmig config check >"$T/$h-check.out" 2>&1 ||
		bad "e2e: config check on $h: $(cat "$T/$h-check.out")"
	unit "$h" sim-host
	unit "$h" disk
	for _ in $(seq 200); do [ -S "$T/$h/state/sim.sock" ] && [ -S "$T/$h/state/disk.sock" ] && break; sleep 0.05; done
	unit "$h" recv
	wait_for "$T/$h-recv.log" "listening" || bad "e2e: recv on $h did not start: $(tail -n 3 "$T/$h-recv.log")"
done
head -n 1 "$T/dst-recv.log"

# a VM on src, then precheck and send, as docs/operating.md "Migrating" says
printf 'name = vm1\nmemory = 32M\nvcpus = 2\nworkload = uniform\ndirty_rate = 2M\n' >"$T/vm1.cfg"
on src secmig sim create "$T/vm1.cfg" >/dev/null || bad "e2e: sim create on src"
on src secmig precheck --to dst --domain vm1 >"$T/precheck.out" 2>&1
rc=$?
cat "$T/precheck.out"
[ $rc = 0 ] || bad "e2e: precheck exit $rc, want 0"
on src secmig send --to dst --domain vm1 >"$T/send.out" 2>&1
rc=$?
tail -n 2 "$T/send.out"
[ $rc = 0 ] || bad "e2e: send exit $rc, want 0: $(tail -n 5 "$T/send.out")"
on dst secmig sim verify vm1 >/dev/null 2>&1 || bad "e2e: vm1 does not verify on dst"
on src secmig sim list | grep -q "^vm1 " && bad "e2e: vm1 still on src after the migration"
nb_down
echo "e2e: $(($(date +%s) - e2e_t0)) s"
