#!/usr/bin/env bash
# secmig precheck (issue 17 item 6): the real handshake, then the source's
# and the destination's checks on the plan send would make, without moving
# the VM. One that passes (exit 0), one the destination's policy refuses
# (exit 5), one over the destination's free capacity (exit 14), one to a
# host that does not know us (exit 3); afterwards every source VM still
# runs and verifies, the destination holds no domain and no outcome record,
# and its capacity ledger holds nothing: three pre-checks of 16 MiB against
# a 32 MiB total, then a real migration of the same VM, which succeeds.
. "$SMG_SRC/test/engine/lib.sh"

{
	echo "host dst"; echo "mode software"
	echo "peer src"; echo "  send web*"
} >"$B/policy"
chmod 600 "$B/policy"
printf 'limit vm memory=1G\nlimit total memory=32M\n' | cat - "$B/defs" >"$T/defs" && mv "$T/defs" "$B/defs"
chmod 600 "$B/defs"

"$SECMIG" --quiet recv --listen 127.0.0.1:0 --json --state-dir "$B" --name dst \
	--policy "$B/policy" --defs "$B/defs" >"$T/recv.out" 2>"$T/recv.err" &
PIDS+=($!)
PORT=
for i in $(seq 200); do
	PORT=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$T/recv.out")
	[ -n "$PORT" ] && break
	sleep 0.05
done
[ -n "$PORT" ] || { err "receiver did not start"; exit 1; }

pre() { # DOMAIN [flags]: sets RC, output in pre.out
	local d=$1; shift
	"$SECMIG" --quiet precheck --to "127.0.0.1:$PORT" --peer dst --domain "$d" \
		--state-dir "$A" --name src "$@" >"$T/pre.out" 2>"$T/pre.err"
	RC=$?
}
vm web1 16M uniform 1M
vm db1 16M uniform 1M
vm web2 48M uniform 1M

for i in 1 2 3; do
	pre web1
	[ "$RC" = 0 ] || { err "precheck web1 (#$i): exit $RC, want 0"; cat "$T/pre.out"; }
done
grep -q "^would succeed" "$T/pre.out" || err "no 'would succeed' line: $(cat "$T/pre.out")"
for c in domain auth policy ticket plan backend definitions capacity; do
	grep -Eq "^  ok +$c " "$T/pre.out" || err "check '$c' not reported ok"
done
cat "$T/pre.out"

pre db1 --json
[ "$RC" = 5 ] || err "precheck db1 (not in the policy's 'send web*'): exit $RC, want 5"
python3 - "$T/pre.out" <<'PY' || err "db1: JSON result: $(cat "$T/pre.out")"
import json, sys
j = json.loads(open(sys.argv[1]).read())
bad = [c for c in j["checks"] if not c["ok"]]
assert j["event"] == "precheck" and j["exit"] == 5 and not j["ok"], j
assert bad[0]["check"] == "policy" and bad[0]["where"] == "destination", bad
PY

pre web2
[ "$RC" = 14 ] || err "precheck web2 (48M over a 32M total): exit $RC, want 14"
grep -Eq "^  FAIL +capacity +destination +capacity: 48 MiB" "$T/pre.out" ||
	err "no capacity failure line: $(cat "$T/pre.out")"
cat "$T/pre.out"

# a destination that does not enrol us: the handshake fails, exit 3
"$SECMIG" keygen "$T/stranger.key" >/dev/null
pre web1 --key "$T/stranger.key"
[ "$RC" = 3 ] || err "precheck with a key dst does not know: exit $RC, want 3"
grep -Eq "^  FAIL +auth " "$T/pre.out" || err "no auth failure line: $(cat "$T/pre.out")"

# nothing moved: every source VM runs and verifies; dst has no domain, no record
for d in web1 db1 web2; do
	[ "$(state_on "$A" "$d")" = running ] || err "$d is not running on the source"
	"$SECMIG" sim --state-dir "$A" verify "$d" >/dev/null 2>&1 || err "$d does not verify on the source"
	[ "$(state_on "$B" "$d")" = absent ] || err "$d exists on the destination after a precheck"
done
[ -z "$(ls "$B/outcomes" 2>/dev/null)" ] || err "outcome records on dst after prechecks: $(ls "$B/outcomes")"

# and nothing was reserved: 3 x 16 MiB pre-checked against 32 MiB, web1 still fits
"$SECMIG" --quiet send --to "127.0.0.1:$PORT" --peer dst --domain web1 --json \
	--state-dir "$A" --name src >"$T/send.out" 2>"$T/send.err"
rc=$?
[ $rc = 0 ] || err "send web1 after the prechecks: exit $rc, want 0"
[ "$(state_on "$B" web1)" = running ] || err "web1 not running on dst after send"
exit $fail
