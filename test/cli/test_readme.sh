#!/usr/bin/env bash
# The README's "Migrating" blocks run as they stand: two hosts on one
# machine, each in its own mount namespace (its own /var/lib, where
# `secmig keygen` must create /var/lib/secmig itself) and both in one
# private network namespace (the fixed port 4849, and dst-host resolving to
# it through a private /etc/hosts). Nothing of a block is edited; the test
# only copies the public keys across, as the README tells the operator to.
set -u
[ "$(id -u)" = 0 ] || { echo "needs root (namespaces): skip"; exit 77; }
command -v unshare >/dev/null || { echo "no unshare: skip"; exit 77; }
T=$(mktemp -d /tmp/smg-readme.XXXXXX)
cleanup() {
	for f in "$T"/*.pids; do
		[ -f "$f" ] && while read -r p; do kill "$p" 2>/dev/null; done <"$f"
	done
	sleep 0.2
	rm -rf "$T"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
fail=0
err() { echo "FAIL: $*"; fail=1; }

# The three blocks of the section, in order.
awk '/^## Migrating/{m=1; next} /^## /{m=0} m && /^```sh/{b++; inb=1; next}
     inb && /^```/{inb=0; next} m && inb {print > (dir "/block" b ".sh")}' dir="$T" \
	"$SMG_SRC/README.md"
for b in 1 2 3; do [ -s "$T/block$b.sh" ] || { err "README block $b not found"; exit 1; }; done
grep -q "secmig send --to dst" "$T/block3.sh" || err "block 3 is not the source's"

mkdir -p "$T/bin" "$T/dst-root" "$T/src-root" "$T/dst-home" "$T/src-home"
ln -s "$SECMIG" "$T/bin/secmig"
printf '127.0.0.1 localhost\n127.0.0.1 dst-host\n' >"$T/hosts"

# One host: its own /var/lib and /etc/hosts, its home as cwd. The block
# itself is run verbatim; the jobs it leaves in the background are noted.
cat >"$T/host.sh" <<'INNER'
host=$1 block=$2 T=$3
mount --bind "$T/$host-root" /var/lib && mount --bind "$T/hosts" /etc/hosts || exit 90
cd "$T/$host-home" || exit 91
export PATH="$T/bin:$PATH"
unset SECMIG_STATE_DIR
. "$T/block$block.sh"
rc=$?
jobs -p >>"$T/$host.pids"
exit $rc
INNER

run_host() { # HOST BLOCK -> exit code of the block's last command
	unshare --mount --propagation private bash "$T/host.sh" "$1" "$2" "$T" \
		>>"$T/$1.out" 2>>"$T/$1.err"
}

cat >"$T/world.sh" <<'WORLD'
set -u
T=$1
. "$T/fns.sh"
ip link set lo up
run_host dst 1 || echo "dst block 1: exit $?" >>"$T/errors"
run_host src 1 || echo "src block 1: exit $?" >>"$T/errors"
# the operator copies the public keys across (scp)
cp "$T/src-root/secmig/host.key.pub" "$T/dst-home/src.pub"
cp "$T/dst-root/secmig/host.key.pub" "$T/src-home/dst.pub"
run_host dst 2 || echo "dst block 2: exit $?" >>"$T/errors"
for i in $(seq 200); do grep -q "listening on" "$T/dst.out" 2>/dev/null && break; sleep 0.05; done
run_host src 3
echo "$?" >"$T/send.rc"
WORLD
declare -f run_host >"$T/fns.sh"
unshare --net bash "$T/world.sh" "$T"

[ -s "$T/errors" ] && err "$(cat "$T/errors")"
[ "$(stat -c %a "$T/dst-root/secmig")" = 700 ] || err "keygen did not create the directory 0700"
[ "$(cat "$T/send.rc" 2>/dev/null)" = 0 ] ||
	{ err "the README's send exited $(cat "$T/send.rc" 2>/dev/null)"; tail -n 5 "$T/src.err"; }
grep -q "^send: migrated vm1 to 'dst'" "$T/src.out" || err "send said: $(tail -2 "$T/src.out")"
grep -q "listening on 0.0.0.0 port 4849 as 'dst'" "$T/dst.out" || err "recv said: $(head -1 "$T/dst.out")"
state=$("$SECMIG" sim --state-dir "$T/dst-root/secmig" list | awk '$1 == "vm1" {print $2}')
[ "$state" = running ] || err "vm1 on dst-host: '$state', want running"
"$SECMIG" sim --state-dir "$T/dst-root/secmig" verify vm1 >"$T/verify" 2>&1 ||
	err "vm1 does not verify on dst-host: $(cat "$T/verify")"
[ -z "$("$SECMIG" sim --state-dir "$T/src-root/secmig" list)" ] || err "vm1 left on the source"
echo "README: $(grep '^send:' "$T/src.out")"
[ $fail = 0 ] && echo "cli readme: all checks passed"
exit $fail
