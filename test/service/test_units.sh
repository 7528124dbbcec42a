#!/usr/bin/env bash
# The systemd units as installed (cmake --install into a staging root) pass
# `systemd-analyze verify` with no output at all: no unknown directive, no
# missing binary (ExecStart is pointed at the staged one), no man page that
# Documentation= names and the install lacks. Also: each unit keeps its
# readiness protocol and hardening, and the verifier does catch a bad unit
# on this machine (so a clean run means something).
set -u
command -v systemd-analyze >/dev/null || { echo "FAIL: systemd-analyze missing (scripts/setup.sh)"; exit 1; }
T=$(mktemp -d /tmp/smg-units.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0

DESTDIR=$T/root cmake --install "$SMG_BUILD" >"$T/install.log" 2>&1 ||
	{ cat "$T/install.log"; exit 1; }
bindir=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$SMG_BUILD/CMakeCache.txt")/bin
units=("$T"/root/lib/systemd/system/secmig-*.service)
[ ${#units[@]} = 3 ] || { echo "FAIL: expected 3 units, got: ${units[*]}"; exit 1; }
mkdir "$T/u"
for u in "${units[@]}"; do
	n=$(basename "$u")
	grep -q "^ExecStart=$bindir/secmig " "$u" || { echo "FAIL: $n: ExecStart is not $bindir/secmig"; fail=1; }
	sed "s|^ExecStart=$bindir/secmig |ExecStart=$T/root$bindir/secmig |" "$u" >"$T/u/$n"
	for want in Type=notify WatchdogSec= NoNewPrivileges=yes ProtectSystem=strict \
		StateDirectory=secmig StateDirectoryMode=0700 PrivateTmp=yes ProtectHome=yes \
		CapabilityBoundingSet= RestrictAddressFamilies= SystemCallArchitectures=native; do
		grep -q "^$want" "$u" || { echo "FAIL: $n lacks $want"; fail=1; }
	done
done

out=$(MANPATH=$T/root/usr/share/man systemd-analyze verify "$T"/u/*.service 2>&1)
rc=$?
echo "systemd-analyze verify (rc $rc):"
echo "${out:-  (no output)}"
[ $rc = 0 ] && [ -z "$out" ] || { echo "FAIL: systemd-analyze verify is not clean"; fail=1; }

# The same check on a unit with a typo and a missing binary must complain.
sed -e 's/^NoNewPrivileges=yes/NoNewPrivilege=yes/' -e "s|^ExecStart=[^ ]*|ExecStart=$T/nothing|" \
	"$T/u/secmig-recv.service" >"$T/u/secmig-bad.service"
bad=$(MANPATH=$T/root/usr/share/man systemd-analyze verify "$T/u/secmig-bad.service" 2>&1)
if grep -q NoNewPrivilege <<<"$bad" && grep -q nothing <<<"$bad"; then
	echo "a broken unit is caught: $(wc -l <<<"$bad") line(s)"
else
	echo "FAIL: verify did not catch a broken unit: $bad"
	fail=1
fi
exit $fail
