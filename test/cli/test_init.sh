#!/usr/bin/env bash
# secmig init (issue 17 item 1): the state directory (0700), the identity
# key and the config files from the shipped skeletons, which `secmig config
# check` accepts; a second run keeps the key and the files, --force replaces
# the key and secmig.conf but never an edited peers file, policy or host
# definitions; a file still exactly as shipped is personalised.
set -u
T=$(mktemp -d /tmp/smg-init.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }
export SECMIG_CONFIG=
init() { "$SECMIG" init --state-dir "$T/state" --config "$T/etc/secmig.conf" "$@"; }

init --name dst1 --mode software >"$T/out" 2>&1 || bad "init: exit $?: $(cat "$T/out")"
[ "$(stat -c %a "$T/state")" = 700 ] || bad "state directory mode $(stat -c %a "$T/state"), want 700"
[ "$(stat -c %a "$T/state/host.key")" = 600 ] || bad "key mode $(stat -c %a "$T/state/host.key")"
for f in secmig.conf peers policy hostdefs; do
	[ -f "$T/etc/$f" ] || bad "no $f"
done
pub=$(cat "$T/state/host.key.pub")
grep -q "^dst1 $pub$" "$T/out" || bad "init did not print 'dst1 PUBKEY'"
grep -q "^host dst1$" "$T/etc/policy" || bad "policy host line not dst1"
grep -q "^mode software$" "$T/etc/policy" || bad "policy mode not software"
grep -q "^state-dir $T/state$" "$T/etc/secmig.conf" || bad "secmig.conf state-dir"
grep -q "^peers $T/etc/peers$" "$T/etc/secmig.conf" || bad "secmig.conf peers path"
grep -q "/etc/secmig\|/var/lib/secmig" "$T/etc/secmig.conf" "$T/etc/policy" "$T/etc/hostdefs" &&
	bad "a file still names the default paths"
"$SECMIG" config check "$T/etc/secmig.conf" >"$T/check" 2>&1 || bad "config check on init's files: $(cat "$T/check")"
# the same through secmig --config FILE
"$SECMIG" --config "$T/etc/secmig.conf" config check >/dev/null 2>&1 || bad "secmig --config F config check"

# again: everything kept
sum=$(cat "$T/etc/"* | md5sum)
init --name other >"$T/out2" 2>&1 || bad "second init: exit $?"
[ "$(cat "$T/state/host.key.pub")" = "$pub" ] || bad "second init replaced the key"
[ "$(cat "$T/etc/"* | md5sum)" = "$sum" ] || bad "second init changed a file"
grep -q "exists, kept" "$T/out2" || bad "second init did not say it kept the files"

# --force: a new key and secmig.conf; the edited policy and peers stay
echo "src AAAA" >>"$T/etc/peers"
echo "# mine" >>"$T/etc/policy"
echo "# mine" >>"$T/etc/secmig.conf"
init --force >/dev/null 2>&1 || bad "init --force: exit $?"
[ "$(cat "$T/state/host.key.pub")" != "$pub" ] || bad "--force kept the old key"
grep -q "# mine" "$T/etc/secmig.conf" && bad "--force kept the old secmig.conf"
grep -q "^src AAAA$" "$T/etc/peers" || bad "--force replaced the peers file"
grep -q "# mine" "$T/etc/policy" || bad "--force replaced an edited policy"

# a group-writable state directory is tightened; usage errors
mkdir -p "$T/s2" && chmod 777 "$T/s2"
"$SECMIG" init --mode software --state-dir "$T/s2" --config "$T/e2/secmig.conf" >/dev/null 2>&1 ||
	bad "init into an existing directory"
[ "$(stat -c %a "$T/s2")" = 700 ] || bad "existing state directory not tightened to 0700"
"$SECMIG" init --mode maybe >/dev/null 2>&1
[ $? = 2 ] || bad "--mode maybe: not a usage error"
"$SECMIG" init --state-dir relative/dir >/dev/null 2>&1
[ $? = 2 ] || bad "relative --state-dir: not a usage error"
[ $fail = 0 ] && echo "init: all checks passed"
exit $fail
